"""The width and the depth of a speech encoder, read off its transformers config.

Whisper's config names them `d_model` and `encoder_layers`; wav2vec2, HuBERT, WavLM and wav2vec2-BERT name them
`hidden_size` and `num_hidden_layers`. The model, its config and the k-means speech units all read them here.

This file has no imports so that it can travel unchanged to a Hub repository beside the modeling and processing
files; `processing/encoder_sizes.py` is a copy generated from it (`scripts/sync_hub_copies.py`).
"""


def audio_hidden_size(audio_config) -> int:
    """The width of the encoder's hidden states."""
    return audio_config.d_model if audio_config.model_type == "whisper" else audio_config.hidden_size


def audio_num_layers(audio_config) -> int:
    """The number of encoder layers (the encoder has one more hidden state: its embeddings)."""
    return audio_config.encoder_layers if audio_config.model_type == "whisper" else audio_config.num_hidden_layers
