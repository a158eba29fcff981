"""VoxLM processing: the processor (placeholder expansion, feature extraction, chat templates) and the
spoken-prompt pipeline."""

from transformers import AutoProcessor

from voxlm.modeling import VoxLMConfig

from .pipeline_voxlm import VoxLMSpokenPromptPipeline
from .processing_voxlm import VoxLMProcessor

AutoProcessor.register(VoxLMConfig, VoxLMProcessor, exist_ok=True)
# `save_pretrained` then writes processing_voxlm.py and the `auto_map` entry for trust_remote_code.
VoxLMProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["VoxLMProcessor", "VoxLMSpokenPromptPipeline"]
