"""VoxLM processing: the processor (placeholder expansion, feature extraction, chat templates), the spoken-prompt
pipeline, discrete speech units, audio token selection and the speech-token classifier's processor."""

from transformers import AutoConfig, AutoModel, AutoProcessor

from voxlm.modeling import VoxLMConfig

from .pipeline_voxlm import VoxLMSpokenPromptPipeline
from .processing_speech_tokens import SpeechTokenProcessor
from .processing_voxlm import VoxLMProcessor
from .speech_units import SpeechUnitConfig, SpeechUnitTokenizer
from .token_selection import SpeechTokenSelector, bag_of_tokens

SpeechTokProcessor = SpeechTokenProcessor  # the earlier name, kept for code that imports it

AutoProcessor.register(VoxLMConfig, VoxLMProcessor, exist_ok=True)
AutoConfig.register(SpeechUnitConfig.model_type, SpeechUnitConfig, exist_ok=True)
AutoModel.register(SpeechUnitConfig, SpeechUnitTokenizer, exist_ok=True)
# The speech-token classifier is a plain transformers LM; registering its processor under the unit config lets
# AutoProcessor find the class by name (`processor_class` in processor_config.json) when voxlm is installed.
AutoProcessor.register(SpeechUnitConfig, SpeechTokenProcessor, exist_ok=True)
# `save_pretrained` then writes the code files and the `auto_map` entries for trust_remote_code.
VoxLMProcessor.register_for_auto_class("AutoProcessor")
SpeechTokenProcessor.register_for_auto_class("AutoProcessor")
SpeechUnitConfig.register_for_auto_class()
SpeechUnitTokenizer.register_for_auto_class("AutoModel")

__all__ = [
    "SpeechTokenProcessor",
    "SpeechTokenSelector",
    "SpeechUnitConfig",
    "SpeechUnitTokenizer",
    "VoxLMProcessor",
    "VoxLMSpokenPromptPipeline",
    "bag_of_tokens",
]
