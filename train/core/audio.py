"""Audio I/O of the training layer: one clip from whatever a data set cell holds, and its duration.

A cell may be a float array or list (sampled at `source_rate`), a `{"array", "sampling_rate"}` dict, an undecoded
`datasets.Audio(decode=False)` dict of `path`/`bytes`, or a file path. Files are read and clips resampled by
`voxlm.processing.audio_checks` (soundfile and scipy), the same code the processor uses. `datasets.Audio()` decoding
is never used: it needs torchcodec, which does not install beside a CPU build of torch.
"""

import io
import os

import numpy as np

from voxlm.processing.audio_checks import SAMPLING_RATE, load_audio, resample_clip


def as_mono(data) -> np.ndarray:
    """(T,), (T, C) or (C, T) samples -> (T,) float32: channels (the shorter axis) are averaged."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        data = data.mean(axis=int(np.argmin(data.shape)))
    return data.reshape(-1)


def read_audio(value, sampling_rate: int = SAMPLING_RATE, source_rate: int | None = None) -> np.ndarray:
    """One mono float32 clip at `sampling_rate` from a data set cell (see the module docstring).

    Bare arrays are taken to be at `source_rate` (default `sampling_rate`); a dict's own `sampling_rate` wins.
    """
    if isinstance(value, dict):
        if value.get("array") is not None:
            rate = value.get("sampling_rate")
            rate = int(rate) if rate is not None else (source_rate or sampling_rate)
            return resample_clip(as_mono(value["array"]), rate, sampling_rate)
        if value.get("bytes"):
            return load_audio(io.BytesIO(value["bytes"]), sampling_rate)
        if not value.get("path"):
            raise ValueError(f"An audio cell has neither `array`, `bytes` nor `path`: keys {sorted(value)}.")
        value = value["path"]
    if isinstance(value, (str, os.PathLike)):
        if not os.path.exists(value):
            raise FileNotFoundError(
                f"Audio file {os.fspath(value)!r} does not exist; check the data set's audio paths."
            )
        return load_audio(value, sampling_rate)
    return resample_clip(as_mono(value), source_rate or sampling_rate, sampling_rate)


def audio_seconds(value, source_rate: int | None = None) -> float:
    """Duration of an audio cell (see `read_audio`) without decoding files: soundfile reads only the header."""
    if isinstance(value, dict):
        if value.get("array") is not None:
            rate = value.get("sampling_rate")
            return len(value["array"]) / int(rate if rate is not None else source_rate or SAMPLING_RATE)
        source = io.BytesIO(value["bytes"]) if value.get("bytes") else value.get("path")
    elif isinstance(value, (str, os.PathLike)):
        source = value
    else:
        return len(value) / (source_rate or SAMPLING_RATE)
    import soundfile

    info = soundfile.info(source)
    return info.frames / info.samplerate


__all__ = ["SAMPLING_RATE", "as_mono", "audio_seconds", "read_audio"]
