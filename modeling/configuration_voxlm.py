"""VoxLM configuration: a speech encoder, a downsampler/adapter described as data, and a language model."""

import copy
import math
import os

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import logging

from .audio_lengths import audio_output_lengths
from .encoder_sizes import audio_hidden_size, audio_num_layers

logger = logging.get_logger(__name__)

# Encoder families VoxLM can run on their real clip length, and what their input time axis counts.
SUPPORTED_AUDIO_ENCODERS = {
    "whisper": "log-mel frames (100 per second)",
    "wav2vec2": "waveform samples",
    "hubert": "waveform samples",
    "wavlm": "waveform samples",
    "data2vec-audio": "waveform samples",
    "wav2vec2-bert": "stacked filter-bank frames (50 per second)",
}
ACTIVATIONS = ("none", "gelu", "glu")
NORMS = (None, "layernorm", "rmsnorm")
PROJECTORS = ("none", "linear", "mlp", "swiglu")
ADAPTER_KEYS = (
    "preset",
    "stack",
    "pre_norm",
    "conv_blocks",
    "bottleneck",
    "projector",
    "projector_hidden",
    "final_norm",
)
CONV_BLOCK_KEYS = ("kernel", "stride", "channels", "activation", "layer_norm")


def check_audio_encoder(audio_config) -> None:
    """Raise a clear error for encoder families or settings VoxLM cannot run on the real clip length."""
    model_type = audio_config.model_type
    if model_type not in SUPPORTED_AUDIO_ENCODERS:
        raise ValueError(
            f"Unsupported audio encoder family {model_type!r}. VoxLM supports: "
            f"{', '.join(SUPPORTED_AUDIO_ENCODERS)}. Pick an `audio_config` of one of these families."
        )
    if getattr(audio_config, "add_adapter", False):
        raise ValueError(
            f"`audio_config.add_adapter=True` ({model_type}) is not supported: VoxLM's own adapter does the "
            "downsampling. Set `add_adapter=False` and describe the downsampling in `adapter` instead."
        )


def audio_input_rate(audio_config, sampling_rate: int = 16000) -> float:
    """Time steps per second of the encoder input (see `SUPPORTED_AUDIO_ENCODERS`)."""
    if audio_config.model_type == "whisper":
        return sampling_rate / 160
    if audio_config.model_type == "wav2vec2-bert":
        return sampling_rate / 320
    return float(sampling_rate)


def encoder_length_formula(audio_config) -> dict:
    """The encoder part of the length formula (see `audio_lengths.py`), read off the encoder's config."""
    check_audio_encoder(audio_config)
    if audio_config.model_type == "whisper":
        # conv1: k=3 s=1 p=1, conv2: k=3 s=2 p=1; positional table of `max_source_positions` per window.
        return {"chunk_size": 2 * audio_config.max_source_positions, "encoder": [[3, 1, 2], [3, 2, 2]]}
    if audio_config.model_type == "wav2vec2-bert":
        return {"chunk_size": None, "encoder": []}
    stages = [[k, s, 0] for k, s in zip(audio_config.conv_kernel, audio_config.conv_stride)]
    return {"chunk_size": None, "encoder": stages}


def encoder_frame_rate(audio_config, sampling_rate: int = 16000) -> float:
    """Encoder output frames per second (50 for Whisper, wav2vec2, HuBERT, WavLM and wav2vec2-BERT)."""
    formula = encoder_length_formula(audio_config)
    rate = audio_input_rate(audio_config, sampling_rate)
    for _, stride, _ in formula["encoder"]:
        rate /= stride
    return rate


def adapter_length_stages(adapter: dict) -> list[list[int]]:
    stages = []
    if adapter["stack"] > 1:
        stages.append([adapter["stack"], adapter["stack"], adapter["stack"] - 1])
    for block in adapter["conv_blocks"]:
        stages.append([block["kernel"], block["stride"], 2 * (block["kernel"] // 2)])
    return stages


def _strides_to_rate(frame_rate: float, target_rate: float) -> list[int]:
    """Split the downsampling factor `frame_rate / target_rate` into strides of 2 (and one 3 or 5 if needed)."""
    factor = round(frame_rate / target_rate)
    if factor < 1 or not math.isclose(frame_rate / factor, target_rate, rel_tol=1e-6):
        raise ValueError(f"Cannot reach {target_rate} Hz from {frame_rate} Hz with integer strides.")
    strides = []
    for prime in (2, 3, 5):
        while factor % prime == 0:
            strides.append(prime)
            factor //= prime
    if factor != 1:
        raise ValueError(f"Cannot reach {target_rate} Hz from {frame_rate} Hz with strides of 2, 3 and 5.")
    return strides


def _conv_block(kernel, stride, channels, activation="none", layer_norm=False) -> dict:
    return {
        "kernel": kernel,
        "stride": stride,
        "channels": channels,
        "activation": activation,
        "layer_norm": layer_norm,
    }


def speechverse_adapter(audio_width: int, text_width: int, frame_rate: float) -> dict:
    """SpeechVerse: Conv1d k=3 + LayerNorm blocks with strides down to 12.5 Hz, then a projection to the LLM."""
    blocks = [_conv_block(3, s, audio_width, "none", True) for s in _strides_to_rate(frame_rate, 12.5)]
    return {
        "stack": 1,
        "pre_norm": None,
        "conv_blocks": blocks,
        "bottleneck": None,
        "projector": "linear",
        "projector_hidden": None,
        "final_norm": None,
    }


def blsp_adapter(audio_width: int, text_width: int, frame_rate: float) -> dict:
    """BLSP: 3 x [Conv1d k=5 s=2 -> GLU] (8x shorter), residual bottleneck d->512->d, LayerNorm."""
    blocks = [_conv_block(5, 2, text_width, "glu", False) for _ in range(3)]
    return {
        "stack": 1,
        "pre_norm": None,
        "conv_blocks": blocks,
        "bottleneck": 512,
        "projector": "none",
        "projector_hidden": None,
        "final_norm": "layernorm",
    }


def ultravox_adapter(audio_width: int, text_width: int, frame_rate: float) -> dict:
    """Ultravox-style: stack 8 frames -> RMSNorm -> Linear -> SwiGLU -> Linear -> RMSNorm."""
    return {
        "stack": 8,
        "pre_norm": "rmsnorm",
        "conv_blocks": [],
        "bottleneck": None,
        "projector": "swiglu",
        "projector_hidden": 4 * text_width,
        "final_norm": "rmsnorm",
    }


ADAPTER_PRESETS = {"speechverse": speechverse_adapter, "blsp": blsp_adapter, "ultravox": ultravox_adapter}


def resolve_adapter(adapter, audio_config, text_config) -> dict:
    """Turn a preset name or a (partial) adapter dict into a complete, validated adapter description."""
    audio_width, text_width = audio_hidden_size(audio_config), text_config.hidden_size
    if isinstance(adapter, str):
        if adapter not in ADAPTER_PRESETS:
            raise ValueError(
                f"Unknown adapter preset {adapter!r}. Known presets: {', '.join(ADAPTER_PRESETS)}; "
                "or pass the adapter as a dict of conv blocks (see `VoxLMConfig`)."
            )
        resolved = ADAPTER_PRESETS[adapter](audio_width, text_width, encoder_frame_rate(audio_config))
        resolved["preset"] = adapter
    elif isinstance(adapter, dict):
        unknown = set(adapter) - set(ADAPTER_KEYS)
        if unknown:
            raise ValueError(f"Unknown adapter keys {sorted(unknown)}; expected some of {list(ADAPTER_KEYS)}.")
        resolved = {
            "preset": None,
            "stack": 1,
            "pre_norm": None,
            "conv_blocks": [],
            "bottleneck": None,
            "projector": "linear",
            "projector_hidden": None,
            "final_norm": None,
        }
        resolved.update(copy.deepcopy(adapter))
    else:
        raise TypeError(f"`adapter` must be a preset name or a dict, got {type(adapter).__name__}.")
    _validate_adapter(resolved, audio_width, text_width)
    return resolved


def _validate_adapter(adapter: dict, audio_width: int, text_width: int) -> None:
    if not isinstance(adapter["stack"], int) or adapter["stack"] < 1:
        raise ValueError(f"adapter `stack` must be an integer >= 1, got {adapter['stack']!r}.")
    for key in ("pre_norm", "final_norm"):
        if adapter[key] not in NORMS:
            raise ValueError(f"adapter `{key}` must be one of {NORMS}, got {adapter[key]!r}.")
    if adapter["projector"] not in PROJECTORS:
        raise ValueError(f"adapter `projector` must be one of {PROJECTORS}, got {adapter['projector']!r}.")
    width = audio_width * adapter["stack"]
    for i, block in enumerate(adapter["conv_blocks"]):
        missing = set(CONV_BLOCK_KEYS) - set(block)
        if missing:
            raise ValueError(f"adapter conv block {i} lacks {sorted(missing)}; each block needs {CONV_BLOCK_KEYS}.")
        if block["activation"] not in ACTIVATIONS:
            raise ValueError(f"conv block {i}: activation must be one of {ACTIVATIONS}, got {block['activation']!r}.")
        if min(block["kernel"], block["stride"], block["channels"]) < 1:
            raise ValueError(f"conv block {i}: kernel, stride and channels must be >= 1, got {block}.")
        width = block["channels"]
    if adapter["projector"] == "none" and width != text_width:
        raise ValueError(
            f"The adapter ends at width {width} but the language model expects {text_width}, and `projector` is "
            "'none'. Set `projector` to 'linear' (or 'mlp'/'swiglu'), or make the last conv block's channels "
            f"{text_width}."
        )


class VoxLMConfig(PretrainedConfig):
    r"""
    Configuration of a [`VoxLMForConditionalGeneration`]: speech encoder -> (layer choice) -> downsampler/adapter
    -> language model.

    Args:
        audio_config (`dict` or `PretrainedConfig`, *optional*):
            Config of the speech encoder: Whisper (its encoder half), wav2vec2, HuBERT, WavLM, data2vec-audio or
            wav2vec2-BERT. Defaults to a Whisper config.
        text_config (`dict` or `PretrainedConfig`, *optional*):
            Config of the language model: any causal LM (Llama, Qwen2, SmolLM, GPT-2, ...) or an encoder-decoder
            LM (T5), in which case the audio goes into the encoder. Defaults to a Llama config.
        adapter (`str` or `dict`, *optional*, defaults to `"speechverse"`):
            A preset name (`"speechverse"`: Conv1d k=3 + LayerNorm down to 12.5 Hz; `"blsp"`: 3 x Conv1d k=5 s=2
            + GLU, bottleneck 512, LayerNorm, 6.25 Hz; `"ultravox"`: stack 8 + SwiGLU projector, 6.25 Hz) or a dict
            with keys `stack` (frames concatenated), `pre_norm`, `conv_blocks` (list of `{kernel, stride,
            channels, activation: none|gelu|glu, layer_norm}`), `bottleneck` (residual d->b->d width or None),
            `projector` (`none|linear|mlp|swiglu`), `projector_hidden` and `final_norm` (`layernorm|rmsnorm|None`).
            Stored fully expanded.
        audio_layer (`int` or `"mix"`, *optional*, defaults to -1):
            Which encoder hidden state feeds the adapter: -1 for the last layer, `k >= 0` for `hidden_states[k]`
            (0 is the input embedding), `"mix"` for a learnable softmax-weighted sum of all of them (SpeechVerse).
        audio_token (`str`, *optional*, defaults to `"<|audio|>"`):
            The placeholder the processor expands to one token per audio position.
        audio_token_id (`int`, *optional*):
            Its id in the processor's tokenizer. It may lie beyond the language model's vocabulary: placeholders are
            replaced before the embedding lookup, so the language model itself is never resized. Defaults to the
            first id past the language model's vocabulary (`text_config.vocab_size`), the id
            `VoxLMProcessor.from_parts` gives the token it adds to a tokenizer of that size.
        audio_length_formula (`dict`, *optional*):
            Derived from the encoder and adapter; stored so that the processor and any reader can see it. A stored
            formula that disagrees with the modules is an error.
        llm_lora (`dict`, *optional*):
            LoRA settings (`r`, `lora_alpha`, `lora_dropout`, `target_modules`, `speech_only`) of unmerged LoRA
            layers in the language model, recreated on load so that their weights find a home. `speech_only`: LoRA
            acts only from each row's first audio clip on, so text-only prompts get the language model's own answers.
    """

    model_type = "voxlm"
    sub_configs_defaults = {
        "audio_config": SubConfigSpec(config_class=AutoConfig, model_type="whisper"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    audio_config: dict | PretrainedConfig | None = None
    text_config: dict | PretrainedConfig | None = None
    adapter: str | dict = "speechverse"
    audio_layer: int | str = -1
    audio_token: str = "<|audio|>"
    audio_token_id: int | None = None
    audio_length_formula: dict | None = None
    llm_lora: dict | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        check_audio_encoder(self.audio_config)
        self.adapter = resolve_adapter(self.adapter, self.audio_config, self.text_config)
        num_states = audio_num_layers(self.audio_config) + 1
        if self.audio_layer != "mix" and not (
            isinstance(self.audio_layer, int) and -num_states <= self.audio_layer < num_states
        ):
            raise ValueError(
                f"`audio_layer` must be 'mix' or an index into the encoder's {num_states} hidden states "
                f"(0 = embeddings, -1 = last layer), got {self.audio_layer!r}."
            )
        formula = {**encoder_length_formula(self.audio_config), "adapter": adapter_length_stages(self.adapter)}
        if self.audio_length_formula is not None and self.audio_length_formula != formula:
            raise ValueError(
                f"The stored `audio_length_formula` {self.audio_length_formula} disagrees with the one implied by "
                f"the encoder and adapter {formula}. Remove it from config.json to recompute it."
            )
        self.audio_length_formula = formula
        if self.audio_token_id is None:
            vocab_size = getattr(self.text_config, "vocab_size", None)
            if not isinstance(vocab_size, int):
                raise ValueError(
                    "`audio_token_id` is not set and the language model's config has no `vocab_size` to place it "
                    "after; pass `audio_token_id` (the placeholder's id in the processor's tokenizer)."
                )
            self.audio_token_id = vocab_size
        self.hidden_size = self.text_config.hidden_size
        self.is_encoder_decoder = bool(getattr(self.text_config, "is_encoder_decoder", False))

    @property
    def audio_positions_per_second(self) -> float:
        """Audio positions the language model sees per second of audio (e.g. 12.5 for the SpeechVerse preset)."""
        rate = encoder_frame_rate(self.audio_config)
        for _, stride, _ in self.audio_length_formula["adapter"]:
            rate /= stride
        return rate

    def num_audio_positions(self, input_lengths):
        """Audio positions for encoder inputs of `input_lengths` frames (the one length formula)."""
        return audio_output_lengths(input_lengths, self.audio_length_formula)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        # `AutoConfig` passes the source on to `from_dict`; do the same so that its errors can name the file.
        kwargs.setdefault("name_or_path", str(pretrained_model_name_or_path))
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """`PretrainedConfig.from_dict`; when the dict was read from a file, a bad value is reported with that file."""
        try:
            return super().from_dict(config_dict, **kwargs)
        except (ValueError, TypeError, KeyError) as error:
            source = kwargs.get("name_or_path")
            if not source:
                raise
            where = os.path.join(source, "config.json") if os.path.isdir(source) else f"config.json of {source!r}"
            raise ValueError(f"{where} is not a valid VoxLM config: {error}") from error


__all__ = ["VoxLMConfig"]
