"""Tiny parts for the speech-token classification tests: codecs, unit tokenizers, LMs and a synthetic corpus."""

import os

import numpy as np
import torch
from tiny import CORPUS, tiny_audio_config, tiny_feature_extractor, tiny_text_config, tiny_tokenizer, tone
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertTokenizerFast,
    DacConfig,
    DacModel,
    EncodecConfig,
    EncodecModel,
    LlamaForCausalLM,
    MimiConfig,
    MimiModel,
)

from voxlm.processing import SpeechUnitConfig, SpeechUnitTokenizer

CODECS = ("encodec", "mimi", "dac")


def tiny_codec(family: str, seed: int = 0):
    """A random 16 kHz codec with 4+ residual codebooks of 64 codes, its codebooks filled with random vectors
    (the quantizers start from zeros, which would give code 0 everywhere)."""
    torch.manual_seed(seed)
    if family == "encodec":
        config = EncodecConfig(
            num_filters=4,
            hidden_size=16,
            codebook_size=64,
            upsampling_ratios=[8, 5, 4],
            num_lstm_layers=1,
            target_bandwidths=[1.5, 3.0],
            sampling_rate=16000,
        )
        model = EncodecModel(config)
    elif family == "mimi":
        config = MimiConfig(
            sampling_rate=16000,
            hidden_size=16,
            num_filters=4,
            upsampling_ratios=[8, 5, 4],
            codebook_size=64,
            codebook_dim=8,
            num_quantizers=4,
            vector_quantization_hidden_dimension=8,
            upsample_groups=16,
            num_hidden_layers=1,
            intermediate_size=32,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=8,
            sliding_window=16,
            max_position_embeddings=256,
        )
        model = MimiModel(config)
    elif family == "dac":
        config = DacConfig(
            encoder_hidden_size=4,
            downsampling_ratios=[2, 4, 5, 4],
            decoder_hidden_size=16,
            n_codebooks=4,
            codebook_size=64,
            codebook_dim=4,
            upsampling_ratios=[4, 5, 4, 2],
            hidden_size=32,
            sampling_rate=16000,
        )
        model = DacModel(config)
    else:
        raise ValueError(family)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("codebook.embed") or name.endswith("codebook.embed_sum"):
                buffer.normal_(std=0.05)
            elif name.endswith("codebook.cluster_usage"):
                buffer.fill_(1.0)
    return model.eval()


def kmeans_units(family: str = "whisper", num_units: int = 8, layer: int = -1, merge_repeats: bool = False, seed=0):
    """A random-encoder k-means unit tokenizer fitted on a few tones."""
    torch.manual_seed(seed)
    config = SpeechUnitConfig(
        backbone_config=tiny_audio_config(family).to_dict(),
        backend="kmeans",
        num_units=num_units,
        layer=layer,
        merge_repeats=merge_repeats,
        feature_extractor=tiny_feature_extractor(family).to_dict(),
    )
    units = SpeechUnitTokenizer(config).eval()
    return units.fit_kmeans(tones(4), sampling_rate=16000, seed=seed)


def tones(count: int, seconds: float = 0.6) -> list[np.ndarray]:
    return [tone(seconds, frequency=110.0 * (i + 1), seed=i) for i in range(count)]


def synthetic_corpus(num_clips: int, vocabulary: list[str], signal: dict, length: int = 40, seed: int = 0):
    """Clips of random audio tokens; clips of class `c` also carry a few of the tokens `signal[c]`.

    Returns (token lists, labels, texts); the texts are the same for every class.
    """
    rng = np.random.default_rng(seed)
    classes = sorted(signal)
    labels = rng.integers(0, len(classes), num_clips)
    noise = [token for token in vocabulary if not any(token in tokens for tokens in signal.values())]
    clips = []
    for label in labels:
        tokens = list(rng.choice(noise, length))
        for _ in range(4):
            tokens.insert(int(rng.integers(0, len(tokens))), str(rng.choice(signal[classes[label]])))
        clips.append(tokens)
    texts = [CORPUS[i % len(CORPUS)] for i in range(num_clips)]
    return clips, [int(label) for label in labels], texts


def tiny_bert_tokenizer(directory: str) -> BertTokenizerFast:
    words = sorted({word for line in CORPUS for word in line.replace(",", " ,").split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    backend = Tokenizer(models.WordPiece({word: i for i, word in enumerate(vocab)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer = BertTokenizerFast(tokenizer_object=backend)
    tokenizer.save_pretrained(directory)
    return BertTokenizerFast.from_pretrained(directory)


def save_tiny_lm(kind: str, directory: str, seed: int = 0) -> str:
    """Save a tiny tied-embedding Llama (`"causal"`) or BERT (`"masked"`) LM with its tokenizer; returns the path."""
    os.makedirs(directory, exist_ok=True)
    torch.manual_seed(seed)
    if kind == "causal":
        tokenizer = tiny_tokenizer()
        model = LlamaForCausalLM(tiny_text_config("llama", vocab_size=len(tokenizer)))
    else:
        tokenizer = tiny_bert_tokenizer(directory)
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=256,
        )
        model = BertForMaskedLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
