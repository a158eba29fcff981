"""Whisper's encoder on the real clip length (no padding to 30 s), cut into windows when longer.

transformers' `WhisperEncoder.forward` only accepts exactly `2 * max_source_positions` mel frames (30 s). Running
its own conv1/conv2 + GELU, adding the first T positional embeddings, then its layers and final LayerNorm gives
the encoder states of the real clip (about 10x faster on short clips). The result is close to, but not equal to,
the first frames of a padded run, so train and infer in the same mode.

Used by the VoxLM model and by the k-means speech units; `processing/whisper_encoder.py` is a copy generated from
this file (`scripts/sync_hub_copies.py`), so that each folder travels to a Hub repository on its own.
"""

import torch
from torch.nn import functional as F
from transformers.masking_utils import create_bidirectional_mask

from .audio_lengths import apply_length_stages

# conv1: k=3 s=1 p=1, conv2: k=3 s=2 p=1 (mel frames -> encoder frames)
WHISPER_CONV_STAGES = [[3, 1, 2], [3, 2, 2]]


def valid_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(N,) lengths -> (N, max_length) bool mask of valid time steps."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


def whisper_window_states(
    encoder, features: torch.Tensor, lengths: torch.Tensor, num_layers: int, training: bool = False
) -> list[torch.Tensor]:
    """Hidden states of clips no longer than one window, at their real length.

    encoder: a `WhisperEncoder`; features: (N, n_mels, T) log-mel frames with T <= 2 * max_source_positions;
    lengths: (N,) valid frames. Returns [embeddings, layer_1, ..., layer_k] of shape (N, ceil(T/2), d); the last
    one after the final LayerNorm when every layer ran, like `WhisperEncoder`.
    """
    mask = valid_mask(lengths, features.shape[-1])[:, None, :].to(features.dtype)  # (N, 1, T)
    hidden = F.gelu(encoder.conv1(features * mask)) * mask
    hidden = F.gelu(encoder.conv2(hidden)).transpose(1, 2)  # (N, T2, d)
    frame_lengths = apply_length_stages(lengths, WHISPER_CONV_STAGES)
    hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]].to(hidden.dtype)
    hidden = F.dropout(hidden, p=encoder.dropout, training=training)
    attention_mask = create_bidirectional_mask(
        config=encoder.config, inputs_embeds=hidden, attention_mask=valid_mask(frame_lengths, hidden.shape[1])
    )
    states = [hidden]
    for layer in encoder.layers[:num_layers]:
        hidden = layer(hidden, attention_mask=attention_mask)
        states.append(hidden)
    if num_layers == len(encoder.layers):
        states[-1] = encoder.layer_norm(hidden)
    return states


def whisper_hidden_states(
    encoder, features: torch.Tensor, lengths: torch.Tensor, num_layers: int, training: bool = False
) -> list[torch.Tensor]:
    """Like `whisper_window_states`, for clips of any length: clips longer than Whisper's window are cut into
    consecutive windows, encoded separately and concatenated, so nothing is truncated.

    Returns hidden states of shape (N, num_windows * frames_per_window, d); each clip's frames stay contiguous.
    """
    window = 2 * encoder.config.max_source_positions
    batch, mels, time = features.shape
    if time <= window:
        return whisper_window_states(encoder, features, lengths, num_layers, training)
    num_windows = -(-time // window)
    features = F.pad(features, (0, num_windows * window - time))
    features = features.reshape(batch, mels, num_windows, window).transpose(1, 2).reshape(-1, mels, window)
    offsets = torch.arange(num_windows, device=lengths.device) * window
    window_lengths = (lengths[:, None] - offsets[None, :]).clamp(0, window).reshape(-1)
    used = window_lengths > 0  # windows past a clip's end hold no audio: skip them
    states = whisper_window_states(encoder, features[used], window_lengths[used], num_layers, training)
    merged = []
    for state in states:  # (K, T2, d) -> (N, num_windows * T2, d)
        full = state.new_zeros(batch * num_windows, *state.shape[1:])
        full[used] = state
        merged.append(full.reshape(batch, -1, state.shape[-1]))
    return merged


__all__ = ["valid_mask", "whisper_hidden_states", "whisper_window_states"]
