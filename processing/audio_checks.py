"""Validation, resampling and loading of audio clips, shared by the processors and the speech unit tokenizer.

Bad audio gets an error naming the clip and the fix, never a silent wrong answer. Flat imports only: this file
travels to Hub repositories beside the processing files.
"""

import math
import os
from collections.abc import Sequence

import numpy as np

AudioClip = np.ndarray | Sequence[float]
SAMPLING_RATE = 16000  # the input rate of every speech encoder VoxLM supports (Whisper, wav2vec2, HuBERT, WavLM, ...)
MIN_AUDIO_SECONDS = 0.025  # one 25 ms analysis window; shorter clips give no encoder frame


def is_single_clip(audio) -> bool:
    """True for one waveform (1-D, or 2-D with a few channels), False for a list or batch of clips."""
    if hasattr(audio, "ndim"):
        return audio.ndim == 1 or (audio.ndim == 2 and min(audio.shape) <= 8)
    return len(audio) > 0 and isinstance(audio[0], (int, float, np.floating, np.integer))


def check_clip(
    index: int,
    clip,
    sampling_rate: int,
    expected_rate: int,
    resample: bool = False,
    downmix: bool = False,
    min_seconds: float = 0.0,
    empty_hint: str = "remove it",
    owner: str = "the model",
    rate_owner: str = "the model",
) -> np.ndarray:
    """Validate one clip and return it as a mono float32 array at `expected_rate`.

    Raises `ValueError` naming the clip and the fix for: integer PCM, several channels (unless `downmix=True`),
    empty or non-finite audio, a wrong sampling rate (unless `resample=True`), or fewer than `min_seconds`.
    `owner` / `rate_owner` name what needs mono audio / the sampling rate in the messages.
    """
    clip = clip.detach().cpu().numpy() if hasattr(clip, "detach") else np.asarray(clip)
    if clip.dtype.kind in "iu":
        raise ValueError(
            f"Audio clip {index} holds integer samples ({clip.dtype}); pass float audio in [-1, 1], e.g. "
            f"`audio.astype(np.float32) / {2 ** (8 * clip.dtype.itemsize - 1)}`."
        )
    if clip.ndim == 2 and 1 in clip.shape:
        clip = clip.reshape(-1)
    if clip.ndim == 2:
        channel_axis = int(np.argmin(clip.shape))
        if not downmix:
            raise ValueError(
                f"Audio clip {index} has {clip.shape[channel_axis]} channels (shape {clip.shape}); {owner} expects "
                f"mono audio. Average the channels (`audio.mean(axis={channel_axis})`) or pass `downmix=True`; "
                "if these are separate clips, pass them as a list."
            )
        clip = clip.mean(axis=channel_axis)
    if clip.ndim != 1:
        raise ValueError(f"Audio clip {index} has shape {clip.shape}; expected a 1-D mono waveform.")
    if clip.size == 0:
        raise ValueError(f"Audio clip {index} is empty; {empty_hint}.")
    if not np.isfinite(clip).all():
        bad = int((~np.isfinite(clip)).sum())
        raise ValueError(f"Audio clip {index} contains {bad} NaN or infinite samples; clean or drop it.")
    clip = clip.astype(np.float32, copy=False)
    if sampling_rate != expected_rate:
        if not resample:
            raise ValueError(
                f"Audio clip {index} is sampled at {sampling_rate} Hz but {rate_owner} expects {expected_rate} Hz. "
                "Resample it (e.g. `scipy.signal.resample_poly`) or pass `resample=True`."
            )
        clip = resample_clip(clip, sampling_rate, expected_rate)
    min_samples = math.ceil(min_seconds * expected_rate)
    if clip.size < min_samples:
        raise ValueError(
            f"Audio clip {index} has {clip.size} samples ({clip.size / expected_rate * 1000:.1f} ms); "
            f"{owner} needs at least {min_samples} samples ({min_seconds * 1000:.0f} ms)."
        )
    return clip


def resample_clip(clip: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling with scipy (float32 out); a clip already at `target_rate` is returned as it is."""
    source_rate, target_rate = int(source_rate), int(target_rate)
    if source_rate == target_rate:
        return np.asarray(clip, dtype=np.float32)
    try:
        from scipy.signal import resample_poly
    except ImportError as error:  # pragma: no cover
        raise ImportError("Resampling needs scipy: pip install scipy") from error
    divisor = math.gcd(source_rate, target_rate)  # 22050 -> 16000 is resample_poly(x, 320, 441)
    return resample_poly(clip, target_rate // divisor, source_rate // divisor).astype(np.float32)


def load_audio(source, sampling_rate: int) -> np.ndarray:
    """A sound file as mono float32 at `sampling_rate` (channels averaged).

    `source` is a path or a file object (e.g. `io.BytesIO`) that soundfile reads; a `.raw` path is headerless 16-bit
    little-endian PCM at 16 kHz (pocketsphinx's test data); `http(s)://` URLs go through transformers.
    """
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        from transformers.audio_utils import load_audio as load_url

        return load_url(source, sampling_rate=sampling_rate)
    try:
        import soundfile
    except ImportError as error:  # pragma: no cover
        raise ImportError("Reading audio files needs soundfile: pip install soundfile") from error
    if isinstance(source, (str, os.PathLike)) and os.fspath(source).endswith(".raw"):
        raw = {"samplerate": SAMPLING_RATE, "channels": 1, "subtype": "PCM_16", "endian": "LITTLE"}
        data, rate = soundfile.read(source, dtype="float32", **raw)
    else:
        data, rate = soundfile.read(source, dtype="float32", always_2d=False)
    if data.ndim == 2:
        data = data.mean(axis=1)
    return resample_clip(data, rate, sampling_rate)


__all__ = [
    "MIN_AUDIO_SECONDS",
    "SAMPLING_RATE",
    "AudioClip",
    "check_clip",
    "is_single_clip",
    "load_audio",
    "resample_clip",
]
