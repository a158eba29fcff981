"""VoxLM model classes, registered with transformers' Auto classes on import."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .audio_lengths import audio_output_lengths
from .configuration_voxlm import ADAPTER_PRESETS, SUPPORTED_AUDIO_ENCODERS, VoxLMConfig
from .modeling_voxlm import VoxLMForConditionalGeneration, VoxLMPreTrainedModel
from .quantization_voxlm import VoxLMQuantizationConfig

AutoConfig.register("voxlm", VoxLMConfig, exist_ok=True)
AutoModel.register(VoxLMConfig, VoxLMForConditionalGeneration, exist_ok=True)
AutoModelForCausalLM.register(VoxLMConfig, VoxLMForConditionalGeneration, exist_ok=True)
# `save_pretrained` then writes the code files and `auto_map`, so the folder loads with trust_remote_code.
VoxLMConfig.register_for_auto_class()
VoxLMForConditionalGeneration.register_for_auto_class("AutoModel")

__all__ = [
    "ADAPTER_PRESETS",
    "SUPPORTED_AUDIO_ENCODERS",
    "VoxLMConfig",
    "VoxLMForConditionalGeneration",
    "VoxLMPreTrainedModel",
    "VoxLMQuantizationConfig",
    "audio_output_lengths",
]
