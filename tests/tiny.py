"""Tiny VoxLM parts built from configs: every test runs offline on a CPU in seconds."""

import functools

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    Data2VecAudioConfig,
    GPT2Config,
    HubertConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    SeamlessM4TFeatureExtractor,
    T5Config,
    Wav2Vec2BertConfig,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    WavLMConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
)

from voxlm.modeling import VoxLMConfig, VoxLMForConditionalGeneration
from voxlm.processing import VoxLMProcessor

AUDIO_FAMILIES = ("whisper", "wav2vec2", "hubert", "wavlm", "data2vec-audio", "wav2vec2-bert")
TEXT_FAMILIES = ("llama", "qwen2", "gpt2")
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "transcribe the audio please",
    "what is said in this recording",
    "hello world, this is a test of speech and language",
    "continue the following text in a coherent and engaging style",
    "user\nassistant\nsystem\n",
] * 20


@functools.lru_cache
def _tokenizer_json() -> str:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    return tokenizer.to_str()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = CHATML
    return tokenizer


def tiny_audio_config(family: str, window_seconds: float = 30.0):
    """A 2-layer encoder of width 32. Whisper's window (30 s by default) can be shortened to test chunking."""
    common = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    conv = {
        "conv_dim": (16, 16),
        "conv_kernel": (10, 8),
        "conv_stride": (5, 64),
        "feat_extract_norm": "layer",
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2,
    }
    if family == "whisper":
        return WhisperConfig(
            d_model=32,
            encoder_layers=2,
            encoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_layers=1,
            decoder_attention_heads=2,
            decoder_ffn_dim=64,
            num_mel_bins=80,
            vocab_size=64,
            max_source_positions=int(window_seconds * 50),
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
        )
    if family == "wav2vec2":
        return Wav2Vec2Config(**common, **conv, do_stable_layer_norm=True)
    if family == "hubert":
        return HubertConfig(**common, **conv, do_stable_layer_norm=True)
    if family == "wavlm":
        return WavLMConfig(**common, **conv, do_stable_layer_norm=True, num_buckets=16, max_bucket_distance=64)
    if family == "data2vec-audio":
        data2vec_conv = {k: v for k, v in conv.items() if k in ("conv_dim", "conv_kernel", "conv_stride")}
        return Data2VecAudioConfig(**common, **data2vec_conv, conv_pos_kernel_size=5, num_conv_pos_embeddings=5)
    if family == "wav2vec2-bert":
        return Wav2Vec2BertConfig(
            **common,
            feature_projection_input_dim=160,
            conv_depthwise_kernel_size=3,
            position_embeddings_type=None,
            left_max_position_embeddings=8,
            right_max_position_embeddings=8,
        )
    raise ValueError(family)


def tiny_text_config(family: str, vocab_size: int):
    ids = {"vocab_size": vocab_size, "pad_token_id": 1, "bos_token_id": 1, "eos_token_id": 3}
    if family == "llama":
        return LlamaConfig(
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            **ids,
        )
    if family == "qwen2":
        return Qwen2Config(
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            **ids,
        )
    if family == "gpt2":
        return GPT2Config(n_embd=48, n_layer=2, n_head=4, n_positions=512, **ids)
    if family == "t5":
        return T5Config(d_model=48, d_kv=12, d_ff=96, num_layers=2, num_heads=4, decoder_start_token_id=1, **ids)
    raise ValueError(family)


def tiny_feature_extractor(family: str):
    if family == "whisper":
        return WhisperFeatureExtractor(feature_size=80)
    if family == "wav2vec2-bert":
        return SeamlessM4TFeatureExtractor()
    return Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True)


def tiny_voxlm(
    audio_family: str = "whisper",
    text_family: str = "llama",
    adapter="speechverse",
    seed: int = 0,
    text_overrides: dict | None = None,
    **config_kwargs,
) -> tuple[VoxLMForConditionalGeneration, VoxLMProcessor]:
    """A random tiny VoxLM model and its processor (the audio token lies past the LLM's vocabulary); `text_overrides`
    changes attributes of the language model's config (e.g. its width)."""
    tokenizer = tiny_tokenizer()
    text_config = tiny_text_config(text_family, vocab_size=len(tokenizer))
    for key, value in (text_overrides or {}).items():
        setattr(text_config, key, value)
    window = config_kwargs.pop("window_seconds", 30.0)
    config = VoxLMConfig(
        audio_config=tiny_audio_config(audio_family, window).to_dict(),
        text_config=text_config.to_dict(),
        adapter=adapter,
        **config_kwargs,
    )
    processor = VoxLMProcessor.from_parts(tiny_feature_extractor(audio_family), tokenizer, config)
    torch.manual_seed(seed)
    model = VoxLMForConditionalGeneration(config).eval()
    return model, processor


def tone(seconds: float, sampling_rate: int = 16000, frequency: float = 220.0, seed: int = 0) -> np.ndarray:
    """A deterministic voiced-like test signal: a tone with harmonics plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    wave = sum(np.sin(2 * np.pi * frequency * k * t) / k for k in range(1, 5))
    return (0.3 * wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
