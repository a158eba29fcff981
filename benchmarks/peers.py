"""VoxLM and transformers' own speech LLMs at matched sizes, and each one's proper inputs.

Every model here shares one language model (a Llama of the same depth, width and vocabulary; untied embeddings,
because Qwen2-Audio and Voxtral cannot tie theirs) and an audio encoder of the same depth and width:

| model             | encoder and its input                 | audio -> LLM                     | LLM positions     |
|-------------------|---------------------------------------|----------------------------------|-------------------|
| VoxLM blsp        | Whisper, real clip length             | 3 x Conv1d k5 s2 + GLU, bottleneck | 6.25 / s        |
| VoxLM ultravox    | Whisper, real clip length             | stack 8, SwiGLU projector        | 6.25 / s          |
| VoxLM speechverse | Whisper, real clip length             | 2 x Conv1d k3 s2 + LayerNorm     | 12.5 / s          |
| Qwen2-Audio       | Whisper, every clip padded to 30 s    | avg-pool 2, linear               | 25 / s (real length) |
| Voxtral           | Whisper, every clip padded to 30 s    | stack 4, MLP                     | 375 per 30 s window |
| GraniteSpeech     | Conformer (block attention), real len | windowed Q-Former (15 -> 3)      | 10 / s (rounded) |

Inputs follow each model's own processor (read from the installed transformers source):
`Qwen2AudioProcessor._process_audio` pads features to 30 s and expands `<|AUDIO|>` to the real-length count
`((l - 1) // 2 + 1 - 2) // 2 + 1`; `VoxtralProcessor` pads audio to a multiple of 30 s and gives every window 375
positions; `GraniteSpeechFeatureExtractor` stacks pairs of 80-bin log-mel frames into 160-dim frames at the real
length and counts `ceil(encoder_frames / 15) * 3` positions. The Granite extractor needs torchaudio, which cannot be
installed beside this CPU torch, so its features are emulated with the same shape from Whisper's log-mel frames.
Timings never include feature extraction (a data loader's job), only the model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from transformers import (
    GraniteSpeechConfig,
    GraniteSpeechForConditionalGeneration,
    LlamaConfig,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    VoxtralConfig,
    VoxtralForConditionalGeneration,
    WhisperConfig,
    WhisperFeatureExtractor,
)

from voxlm.modeling import VoxLMConfig, VoxLMForConditionalGeneration
from voxlm.processing.audio_checks import SAMPLING_RATE

HOP = 160  # samples per log-mel frame (100 frames per second)
WINDOW_SECONDS = 30  # Whisper's window: Qwen2-Audio and Voxtral pad every clip to it
VOXLM_PRESETS = ("blsp", "ultravox", "speechverse")
MODELS = tuple(f"voxlm-{preset}" for preset in VOXLM_PRESETS) + ("qwen2-audio", "voxtral", "granite-speech")
PROMPT_BEFORE_AUDIO = 10  # e.g. "<|im_start|>user\n" and an instruction
PROMPT_AFTER_AUDIO = 6  # e.g. "<|im_end|>\n<|im_start|>assistant\n"
RESPONSE_TOKENS_PER_SECOND = 3.3  # read speech: ~2.5 words/s, ~1.3 BPE tokens per word


@dataclass(frozen=True)
class Size:
    """Shared dimensions: one encoder depth/width and one LLM depth/width/vocabulary for every model."""

    name: str
    encoder_layers: int
    encoder_width: int
    encoder_heads: int
    llm_layers: int
    llm_width: int
    llm_heads: int
    llm_kv_heads: int
    llm_ffn: int
    vocab_size: int
    num_mel_bins: int = 80

    @property
    def encoder_ffn(self) -> int:
        return 4 * self.encoder_width  # Whisper's ratio; Voxtral's stack-4 projector relies on it


SIZES = {
    # CI smoke test: seconds for the whole run.
    "tiny": Size("tiny", 2, 64, 2, 2, 64, 2, 1, 128, 1024),
    # The full run: a Whisper-shaped encoder and a SmolLM2-shaped LLM (ffn = 2.67 x width, 3 query heads per
    # key/value head, a 16k vocabulary), small enough that 30 s batches of the padded peers take seconds on one core.
    "small": Size("small", 2, 96, 2, 4, 192, 3, 1, 512, 16384),
}


def llm_config(size: Size) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=size.vocab_size,
        hidden_size=size.llm_width,
        intermediate_size=size.llm_ffn,
        num_hidden_layers=size.llm_layers,
        num_attention_heads=size.llm_heads,
        num_key_value_heads=size.llm_kv_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )


def audio_token_id(size: Size) -> int:
    """The placeholder id: the last id of the shared vocabulary (text ids are drawn below it)."""
    return size.vocab_size - 1


def _whisper_encoder_kwargs(size: Size) -> dict:
    return {
        "num_mel_bins": size.num_mel_bins,
        "max_source_positions": WINDOW_SECONDS * 50,
    }


def build_voxlm(size: Size, preset: str) -> VoxLMForConditionalGeneration:
    audio = WhisperConfig(
        d_model=size.encoder_width,
        encoder_layers=size.encoder_layers,
        encoder_attention_heads=size.encoder_heads,
        encoder_ffn_dim=size.encoder_ffn,
        decoder_layers=1,
        decoder_attention_heads=size.encoder_heads,
        decoder_ffn_dim=size.encoder_ffn,
        vocab_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
        **_whisper_encoder_kwargs(size),
    )
    config = VoxLMConfig(
        audio_config=audio.to_dict(),
        text_config=llm_config(size).to_dict(),
        adapter=preset,
        audio_token_id=audio_token_id(size),
    )
    return VoxLMForConditionalGeneration(config)


def _whisper_like_audio_config(model_type: str, size: Size) -> dict:
    """Qwen2-Audio's and Voxtral's Whisper encoders (both configs map these generic names onto their own)."""
    return {
        "model_type": model_type,
        "hidden_size": size.encoder_width,
        "num_hidden_layers": size.encoder_layers,
        "num_attention_heads": size.encoder_heads,
        "intermediate_size": size.encoder_ffn,
        **_whisper_encoder_kwargs(size),
    }


def build_qwen2_audio(size: Size) -> Qwen2AudioForConditionalGeneration:
    config = Qwen2AudioConfig(
        audio_config=_whisper_like_audio_config("qwen2_audio_encoder", size),
        text_config=llm_config(size).to_dict(),
        audio_token_index=audio_token_id(size),
    )
    return Qwen2AudioForConditionalGeneration(config)


def build_voxtral(size: Size) -> VoxtralForConditionalGeneration:
    # A config object (not a dict) so that Voxtral's 3B defaults (head_dim=128, ...) are not merged into it.
    config = VoxtralConfig(
        audio_config=_whisper_like_audio_config("voxtral_encoder", size),
        text_config=llm_config(size),
        audio_token_id=audio_token_id(size),
    )
    return VoxtralForConditionalGeneration(config)


def build_granite_speech(size: Size) -> GraniteSpeechForConditionalGeneration:
    encoder = {
        "input_dim": 2 * size.num_mel_bins,
        "num_layers": size.encoder_layers,
        "hidden_dim": size.encoder_width,
        "num_heads": size.encoder_heads,
    }
    # Granite-speech-3.3's projector: a 2-layer Q-Former at the encoder width, cross-attention in every layer.
    projector = {
        "model_type": "blip_2_qformer",
        "hidden_size": size.encoder_width,
        "num_hidden_layers": 2,
        "num_attention_heads": size.encoder_heads,
        "intermediate_size": size.encoder_ffn,
        "encoder_hidden_size": size.encoder_width,
        "cross_attention_frequency": 1,
    }
    config = GraniteSpeechConfig(
        text_config=llm_config(size).to_dict(),
        encoder_config=encoder,
        projector_config=projector,
        audio_token_index=audio_token_id(size),
        has_lora_adapter=False,
        tie_word_embeddings=False,
    )
    return GraniteSpeechForConditionalGeneration(config)


def build_model(name: str, size: Size, seed: int = 0) -> torch.nn.Module:
    """A random-weight model of `MODELS` at `size`."""
    torch.manual_seed(seed)
    if name.startswith("voxlm-"):
        return build_voxlm(size, name.removeprefix("voxlm-"))
    builders = {"qwen2-audio": build_qwen2_audio, "voxtral": build_voxtral, "granite-speech": build_granite_speech}
    if name not in builders:
        raise ValueError(f"Unknown model {name!r}; choose from {', '.join(MODELS)}.")
    return builders[name](size)


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Parameters of the audio side (encoder + adapter/projector) and of the language model."""
    total = sum(p.numel() for p in model.parameters())
    llm = getattr(model, "language_model", None) or model.model.language_model
    head = 0 if hasattr(model, "language_model") else model.lm_head.weight.numel()
    llm_params = sum(p.numel() for p in llm.parameters()) + head
    return {"total": total, "audio": total - llm_params, "llm": llm_params}


# ------------------------------------------------------------------------------------------------ inputs
def audio_positions(name: str, model: torch.nn.Module, seconds: float) -> int:
    """LLM positions one clip of `seconds` occupies, by each model's own rule."""
    samples = int(round(seconds * SAMPLING_RATE))
    if name.startswith("voxlm-"):
        return int(model.config.num_audio_positions(samples // HOP))
    if name == "qwen2-audio":
        frames = min(samples // HOP, WINDOW_SECONDS * 100)
        return ((frames - 1) // 2 + 1 - 2) // 2 + 1
    if name == "voxtral":
        return math.ceil(samples / (WINDOW_SECONDS * SAMPLING_RATE)) * (WINDOW_SECONDS * 50 // 4)
    if name == "granite-speech":
        encoder_frames = (samples // HOP + 1) // 2
        return math.ceil(encoder_frames / model.config.window_size) * (
            model.config.window_size // model.config.downsample_rate
        )
    raise ValueError(name)


def response_tokens(seconds: float) -> int:
    return 1 + int(round(RESPONSE_TOKENS_PER_SECOND * seconds))


def clips(seconds: float, batch_size: int, seed: int = 0) -> list[np.ndarray]:
    """Voiced-like test clips (harmonic tones with noise) of exactly `seconds`."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SAMPLING_RATE))) / SAMPLING_RATE
    out = []
    for _ in range(batch_size):
        f0 = rng.uniform(90, 250)
        wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5))
        out.append((0.3 * wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32))
    return out


class FeatureBank:
    """Log-mel features of the benchmark clips, computed once per clip length and reused by every model."""

    def __init__(self, num_mel_bins: int = 80):
        self.extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
        self.cache: dict[tuple[float, int], np.ndarray] = {}

    def log_mel(self, seconds: float, batch_size: int) -> np.ndarray:
        """(N, n_mels, 100 * seconds) log-mel frames at the real clip length."""
        key = (seconds, batch_size)
        if key not in self.cache:
            out = self.extractor(
                clips(seconds, batch_size),
                sampling_rate=SAMPLING_RATE,
                padding="longest",
                truncation=False,
                return_tensors="np",
            )
            self.cache[key] = out["input_features"].astype(np.float32)
        return self.cache[key]


def _pad_time(features: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad (or cut) the last axis to `length`: Whisper's padding of silence to 30 s gives log-mel floor values,
    but the encoder's cost does not depend on the values."""
    out = np.zeros((*features.shape[:-1], length), dtype=features.dtype)
    keep = min(length, features.shape[-1])
    out[..., :keep] = features[..., :keep]
    return out


def audio_inputs(name: str, model: torch.nn.Module, bank: FeatureBank, seconds: float, batch_size: int) -> dict:
    """The model's audio tensors for `batch_size` clips of `seconds`, shaped as its processor makes them."""
    mel = bank.log_mel(seconds, batch_size)  # (N, n_mels, T)
    frames = mel.shape[-1]
    if name.startswith("voxlm-"):
        return {
            "input_features": torch.from_numpy(mel),
            "input_features_mask": torch.ones(batch_size, frames, dtype=torch.long),
        }
    if name in ("qwen2-audio", "voxtral"):
        windows = max(1, math.ceil(frames / (WINDOW_SECONDS * 100)))
        padded = _pad_time(mel, windows * WINDOW_SECONDS * 100)
        if name == "voxtral":  # windows are stacked along the batch axis
            padded = padded.reshape(batch_size, mel.shape[1], windows, -1).transpose(0, 2, 1, 3)
            return {"input_features": torch.from_numpy(np.ascontiguousarray(padded.reshape(-1, mel.shape[1], 3000)))}
        mask = torch.zeros(batch_size, padded.shape[-1], dtype=torch.long)
        mask[:, : min(frames, padded.shape[-1])] = 1
        return {"input_features": torch.from_numpy(padded), "feature_attention_mask": mask}
    if name == "granite-speech":
        mel_frames = int(round(seconds * SAMPLING_RATE)) // HOP + 1
        mel = _pad_time(mel, mel_frames - mel_frames % 2)  # even number of frames, like its extractor
        stacked = mel.transpose(0, 2, 1).reshape(batch_size, -1, 2 * mel.shape[1])  # (N, T/2, 160)
        positions = audio_positions(name, model, seconds)
        return {
            "input_features": torch.from_numpy(np.ascontiguousarray(stacked)),
            "input_features_mask": torch.ones(batch_size, positions, dtype=torch.bool),
        }
    raise ValueError(name)


def text_rows(size: Size, positions: int, response: int, batch_size: int, seed: int = 0):
    """Token ids `[prompt | audio placeholders | prompt | response]` and labels on the response only."""
    generator = torch.Generator().manual_seed(seed)
    length = PROMPT_BEFORE_AUDIO + positions + PROMPT_AFTER_AUDIO + response
    input_ids = torch.randint(3, audio_token_id(size), (batch_size, length), generator=generator)
    input_ids[:, PROMPT_BEFORE_AUDIO : PROMPT_BEFORE_AUDIO + positions] = audio_token_id(size)
    labels = torch.full_like(input_ids, -100)
    labels[:, -response:] = input_ids[:, -response:]
    return input_ids, labels


def training_batch(
    name: str, model: torch.nn.Module, size: Size, bank: FeatureBank, seconds: float, batch_size: int
) -> dict:
    """A full training batch: audio inputs, ids with expanded placeholders, attention mask and labels."""
    positions = audio_positions(name, model, seconds)
    input_ids, labels = text_rows(size, positions, response_tokens(seconds), batch_size)
    return {
        **audio_inputs(name, model, bank, seconds, batch_size),
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": labels,
    }


def prompt_length(name: str, model: torch.nn.Module, seconds: float) -> int:
    """Positions of a generation prompt: `[prompt | audio | prompt]`."""
    return PROMPT_BEFORE_AUDIO + audio_positions(name, model, seconds) + PROMPT_AFTER_AUDIO


def generation_batch(
    name: str, model: torch.nn.Module, size: Size, bank: FeatureBank, seconds: float, batch_size: int
) -> dict:
    """A generation prompt: audio inputs and `[prompt | audio | prompt]` ids."""
    positions = audio_positions(name, model, seconds)
    input_ids, _ = text_rows(size, positions, 0, batch_size)
    input_ids = input_ids[:, : prompt_length(name, model, seconds)]
    return {
        **audio_inputs(name, model, bank, seconds, batch_size),
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
    }


def size_description(size: Size) -> dict:
    return asdict(size) | {"encoder_ffn": size.encoder_ffn}
