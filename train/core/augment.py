"""Acoustic augmentation of 16 kHz speech: noise, babble, rooms, telephone lines, codecs, gain and speed.

`augment(clip, seed, spec)` applies each effect of an `AugmentSpec` with its probability, in the order a recording
meets them: the talker's speed, the room (reverb), other sounds in it (coloured noise, babble), the channel (a
telephone line or a low-bitrate codec, one at most) and the recording level (gain)::

    spec = AugmentSpec.from_dict(yaml.safe_load(open("recipe.yaml"))["augment"])
    noisy, applied = augment(clip, seed=1234, spec=spec, babble_pool=other_clips)   # applied: ["reverb", "noise"]

A recipe gives, per effect it wants, its probability `p` and the ranges to draw from (here: the defaults; an effect
the recipe does not name is off)::

    speed:     {p: 0.3, factor: [0.9, 1.1]}        # Kaldi's speed perturbation: resampled, so pitch moves too
    reverb:    {p: 0.3, rt60: [0.2, 0.8], direct_to_reverberant_db: [0.0, 10.0]}
    noise:     {p: 0.3, snr_db: [5.0, 30.0], colors: [white, pink, brown]}
    babble:    {p: 0.2, snr_db: [5.0, 20.0], speakers: [3, 7]}   # needs `babble_pool`; skipped without one
    telephone: {p: 0.1, mu_law_p: 0.5}             # 300-3400 Hz, through 8 kHz, optionally 8-bit mu-law
    codec:     {p: 0.1, codecs: [codec2-3200, codec2-1600, codec2-1300, mp3, opus], compression: [0.5, 1.0]}
                                                   # p applies to clips the telephone line left alone
    gain:      {p: 0.5, db: [-15.0, 5.0]}          # never clips: a clip that would is scaled to 0.99 peak

Everything runs on numpy/scipy except codec2 (`c2enc`/`c2dec` from Debian's codec2; missing -> that codec is not
drawn, with one warning) and MP3/Opus, which libsndfile (inside the `soundfile` wheel) encodes in memory. The same
clip, seed, spec and pool always give the same output; the result is finite, not silent, within [-1, 1], and as long
as the input (speed perturbation: the input length divided by the factor, rounded up).
"""

import dataclasses
import functools
import io
import math
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import ClassVar

import numpy as np
from scipy import signal
from transformers.utils import logging

from voxlm.processing.audio_checks import SAMPLING_RATE

logger = logging.get_logger(__name__)

PEAK = 0.99  # the loudest sample any effect leaves: gain and mixing rescale rather than clip
MIN_SAMPLES = SAMPLING_RATE // 10  # shorter clips are too short for the telephone line's zero-phase filter
NOISE_COLORS = ("white", "pink", "brown")
CODEC2_MODES = {
    "codec2-3200": 160,
    "codec2-2400": 160,
    "codec2-1600": 320,
    "codec2-1400": 320,
    "codec2-1300": 320,
    "codec2-1200": 320,
}  # fmt: skip  (mode -> samples per frame at 8 kHz)
CODECS = (*CODEC2_MODES, "mp3", "opus")


# ---------------------------------------------------------------------------------------------- the spec
def _range(value, name: str, low: float | None = None, high: float | None = None) -> tuple[float, float]:
    """A validated [min, max] pair (a single number means a fixed value)."""
    pair = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(x, (int, float)) for x in pair) or pair[0] > pair[1]:
        raise ValueError(f"{name} must be [min, max] with min <= max, got {value!r}.")
    if (low is not None and pair[0] < low) or (high is not None and pair[1] > high):
        raise ValueError(f"{name} must lie within [{low}, {high}], got {value!r}.")
    return (float(pair[0]), float(pair[1]))


def _probability(value, name: str) -> float:
    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}.")
    return float(value)


@dataclasses.dataclass(frozen=True)
class _Effect:
    """An effect's settings: `p`, the probability of applying it, then its ranges (validated on creation)."""

    name: ClassVar[str] = ""
    bounds: ClassVar[dict[str, tuple[float | None, float | None]]] = {}  # range fields: the limits of their values
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}  # list fields: the values they may hold
    p: float = 0.0

    def __post_init__(self):
        self._set("p", _probability(self.p, f"{self.name}.p"))
        for key, (low, high) in self.bounds.items():
            self._set_range(key, low, high)
        for key, allowed in self.choices.items():
            self._set_choices(key, allowed)

    def _set(self, key: str, value) -> None:
        object.__setattr__(self, key, value)  # frozen: validation normalises values once, here

    def _set_range(self, key: str, low: float | None = None, high: float | None = None) -> None:
        self._set(key, _range(getattr(self, key), f"{self.name}.{key}", low, high))

    def _set_choices(self, key: str, allowed: Sequence[str]) -> None:
        value = getattr(self, key)
        choices = (value,) if isinstance(value, str) else tuple(value)
        if not choices or set(choices) - set(allowed):
            raise ValueError(f"{self.name}.{key} must be a non-empty list of {list(allowed)}, got {value!r}.")
        self._set(key, choices)


@dataclasses.dataclass(frozen=True)
class Speed(_Effect):
    """Speed perturbation by resampling (factor > 1: faster and higher)."""

    name: ClassVar[str] = "speed"
    p: float = 0.3
    factor: tuple[float, float] = (0.9, 1.1)

    bounds: ClassVar = {"factor": (0.5, 2.0)}


@dataclasses.dataclass(frozen=True)
class Reverb(_Effect):
    """A synthetic room: direct path plus exponentially decaying noise reaching -60 dB after `rt60` seconds."""

    name: ClassVar[str] = "reverb"
    p: float = 0.3
    rt60: tuple[float, float] = (0.2, 0.8)
    direct_to_reverberant_db: tuple[float, float] = (0.0, 10.0)

    bounds: ClassVar = {"rt60": (0.05, 3.0), "direct_to_reverberant_db": (None, None)}


@dataclasses.dataclass(frozen=True)
class Noise(_Effect):
    """Stationary coloured noise at a signal-to-noise ratio (dB, over the whole clip)."""

    name: ClassVar[str] = "noise"
    p: float = 0.3
    snr_db: tuple[float, float] = (5.0, 30.0)
    colors: tuple[str, ...] = NOISE_COLORS

    bounds: ClassVar = {"snr_db": (None, None)}
    choices: ClassVar = {"colors": NOISE_COLORS}


@dataclasses.dataclass(frozen=True)
class Babble(_Effect):
    """Several other talkers (clips of `babble_pool`) at a signal-to-babble ratio (dB)."""

    name: ClassVar[str] = "babble"
    p: float = 0.2
    snr_db: tuple[float, float] = (5.0, 20.0)
    speakers: tuple[int, int] = (3, 7)

    bounds: ClassVar = {"snr_db": (None, None), "speakers": (1, 100)}

    def __post_init__(self):
        given = self.speakers
        super().__post_init__()
        if any(count != int(count) for count in self.speakers):
            raise ValueError(f"babble.speakers must be whole numbers, got {given!r}.")
        self._set("speakers", tuple(int(count) for count in self.speakers))


@dataclasses.dataclass(frozen=True)
class Telephone(_Effect):
    """A telephone line: 300-3400 Hz band, 8 kHz sampling, and with probability `mu_law_p` 8-bit mu-law."""

    name: ClassVar[str] = "telephone"
    p: float = 0.1
    mu_law_p: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        self._set("mu_law_p", _probability(self.mu_law_p, "telephone.mu_law_p"))


@dataclasses.dataclass(frozen=True)
class Codec(_Effect):
    """A low-bitrate codec round trip: codec2 modes (8 kHz), MP3 or Opus (`compression` 0-1: 1 is the lowest rate)."""

    name: ClassVar[str] = "codec"
    p: float = 0.1
    codecs: tuple[str, ...] = ("codec2-3200", "codec2-1600", "codec2-1300", "mp3", "opus")
    compression: tuple[float, float] = (0.5, 1.0)

    bounds: ClassVar = {"compression": (0.0, 1.0)}
    choices: ClassVar = {"codecs": CODECS}


@dataclasses.dataclass(frozen=True)
class Gain(_Effect):
    """A level change in dB (clipping is avoided by scaling the clip to a 0.99 peak instead)."""

    name: ClassVar[str] = "gain"
    p: float = 0.5
    db: tuple[float, float] = (-15.0, 5.0)

    bounds: ClassVar = {"db": (-60.0, 40.0)}


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """Per-effect probabilities and ranges; `AugmentSpec.from_dict` reads the `augment:` block of a recipe."""

    speed: Speed = Speed()
    reverb: Reverb = Reverb()
    noise: Noise = Noise()
    babble: Babble = Babble()
    telephone: Telephone = Telephone()
    codec: Codec = Codec()
    gain: Gain = Gain()

    @classmethod
    def from_dict(cls, config: Mapping | None) -> "AugmentSpec":
        """Build from `{effect: {key: value}}`, as a recipe writes it: only the effects named are on (an effect's
        keys left out keep their defaults, `p` included), so a recipe never augments with an effect it does not
        show. Unknown effects or keys raise a ValueError naming the allowed ones. `AugmentSpec()` is every effect at
        its default."""
        config = dict(config or {})
        effects = {field.name: type(field.default) for field in dataclasses.fields(cls)}
        unknown = set(config) - set(effects)
        if unknown:
            raise ValueError(f"Unknown augmentation effect(s) {sorted(unknown)}; the effects are {list(effects)}.")
        built = {name: effect_class(p=0.0) for name, effect_class in effects.items()}
        for name, settings in config.items():
            effect_class = effects[name]
            if not isinstance(settings, Mapping):
                raise ValueError(f"augment.{name} must be a mapping like {{p: 0.3, ...}}, got {settings!r}.")
            allowed = [field.name for field in dataclasses.fields(effect_class)]  # ClassVar `name` is no field
            unknown = set(settings) - set(allowed)
            if unknown:
                raise ValueError(f"Unknown key(s) {sorted(unknown)} in augment.{name}; allowed: {allowed}.")
            built[name] = effect_class(**settings)
        return cls(**built)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def off(cls) -> "AugmentSpec":
        """Every effect with probability 0 (a base to turn single effects on)."""
        return cls.from_dict({field.name: {"p": 0.0} for field in dataclasses.fields(cls)})


# --------------------------------------------------------------------------------------------- effects
def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def fit_peak(x: np.ndarray) -> np.ndarray:
    """`x` scaled down to a 0.99 peak if it is louder (never clipped); otherwise unchanged."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return x * (PEAK / peak) if peak > PEAK else x


def speed_perturb(clip: np.ndarray, factor: float) -> np.ndarray:
    """Play `clip` `factor` times faster (Kaldi's speed perturbation: resample by 1/factor; pitch moves too).

    The result has ceil(len(clip) / factor) samples (the factor is rounded to a ratio with denominator <= 100)."""
    ratio = Fraction(factor).limit_denominator(100)
    return signal.resample_poly(clip, ratio.denominator, ratio.numerator).astype(np.float32)


def colored_noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of unit-power noise whose power falls as 1/f^0 (white), 1/f (pink) or 1/f^2 (brown)."""
    if color not in NOISE_COLORS:
        raise ValueError(f"Unknown noise color {color!r}; choose from {list(NOISE_COLORS)}.")
    white = rng.standard_normal(n)
    if color != "white":
        spectrum = np.fft.rfft(white)
        frequency = np.fft.rfftfreq(n, 1 / SAMPLING_RATE)
        frequency[0] = frequency[1] if n > 1 else 1.0  # no infinite DC gain
        exponent = 0.5 if color == "pink" else 1.0  # amplitude ~ f^-exponent
        white = np.fft.irfft(spectrum / np.maximum(frequency, 20.0) ** exponent, n)  # flat below 20 Hz
    white -= white.mean()
    return (white / math.sqrt(max(_power(white), 1e-20))).astype(np.float32)


def mix_at_snr(clip: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`clip + g * noise` with `g` such that 10 log10(power(clip) / power(g * noise)) = `snr_db` (whole clips)."""
    gain = math.sqrt(_power(clip) / (max(_power(noise), 1e-20) * 10 ** (snr_db / 10)))
    return (clip + gain * noise[: len(clip)]).astype(np.float32)


def babble_noise(n: int, pool: Sequence[np.ndarray], speakers: int, rng: np.random.Generator) -> np.ndarray:
    """`speakers` clips of `pool` at equal power, each looped from a random offset to `n` samples, summed."""
    babble = np.zeros(n, np.float64)
    for index in rng.choice(len(pool), size=speakers, replace=speakers > len(pool)):
        talker = np.asarray(pool[index], dtype=np.float64)
        if _power(talker) <= 0:
            continue
        looped = np.resize(np.roll(talker, -int(rng.integers(len(talker)))), n)  # np.resize repeats the clip
        babble += looped / math.sqrt(_power(talker))
    return babble.astype(np.float32)


def room_impulse_response(rt60: float, direct_to_reverberant_db: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room response: a unit direct path at sample 0, then Gaussian noise decaying by 60 dB over `rt60`
    seconds (starting 2.5 ms later, like the first reflections), scaled to the direct-to-reverberant ratio."""
    length = int(min(rt60, 2.0) * SAMPLING_RATE)
    onset = int(0.0025 * SAMPLING_RATE)
    times = np.arange(length - onset) / SAMPLING_RATE
    tail = rng.standard_normal(len(times)) * 10 ** (-3 * times / rt60)  # amplitude: -60 dB at rt60
    tail *= math.sqrt(10 ** (-direct_to_reverberant_db / 10) / max(float(np.sum(tail**2)), 1e-20))
    response = np.zeros(length, np.float64)
    response[0] = 1.0
    response[onset:] = tail
    return response


def reverberate(clip: np.ndarray, response: np.ndarray) -> np.ndarray:
    """`clip` convolved with `response`, cut to the clip's length (the direct path at 0 keeps it aligned) and
    brought back to the clip's power."""
    wet = signal.fftconvolve(clip.astype(np.float64), response)[: len(clip)]
    return (wet * math.sqrt(_power(clip) / max(_power(wet), 1e-20))).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _telephone_filter() -> np.ndarray:
    return signal.butter(6, [300, 3400], btype="bandpass", fs=8000, output="sos")


def mu_law(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """G.711 mu-law in float: compress, quantise to a sign and 7 bits (255 levels, 0 stays 0), expand."""
    compressed = np.log1p(mu * np.minimum(np.abs(x), 1.0)) / math.log1p(mu)
    quantised = np.round(compressed * 127) / 127
    return np.sign(x) * ((1 + mu) ** quantised - 1) / mu


def telephone(clip: np.ndarray, use_mu_law: bool = False) -> np.ndarray:
    """A telephone line: down to 8 kHz, band-passed to 300-3400 Hz (zero phase: no delay), optionally mu-law, back
    up to 16 kHz (nothing remains above 4 kHz)."""
    narrow = signal.resample_poly(clip.astype(np.float64), 1, 2)
    narrow = signal.sosfiltfilt(_telephone_filter(), narrow)
    if use_mu_law:
        narrow = mu_law(fit_peak(narrow))
    return signal.resample_poly(narrow, 2, 1)[: len(clip)].astype(np.float32)


@functools.cache
def _codec2_missing() -> str | None:
    if shutil.which("c2enc") is None or shutil.which("c2dec") is None:
        message = "codec2's c2enc/c2dec are not installed (`sudo apt-get install codec2`); codec2 modes are not drawn."
        logger.warning(message)
        return message
    return None


def codec2_round_trip(clip: np.ndarray, mode: str) -> np.ndarray:
    """Encode and decode with codec2 (`mode` like "codec2-1300"), through 8 kHz 16-bit PCM; same length out."""
    if mode not in CODEC2_MODES:
        raise ValueError(f"Unknown codec2 mode {mode!r}; choose from {list(CODEC2_MODES)}.")
    if _codec2_missing():
        raise RuntimeError(_codec2_missing())
    narrow = signal.resample_poly(clip.astype(np.float64), 1, 2)
    frame = CODEC2_MODES[mode]
    padded = np.zeros(math.ceil(len(narrow) / frame) * frame)
    padded[: len(narrow)] = narrow
    pcm = (np.clip(fit_peak(padded), -1, 1) * 32767).astype("<i2").tobytes()
    bitrate = mode.split("-", 1)[1]
    encoded = subprocess.run(["c2enc", bitrate, "-", "-"], input=pcm, capture_output=True, check=True).stdout
    decoded = subprocess.run(["c2dec", bitrate, "-", "-"], input=encoded, capture_output=True, check=True).stdout
    narrow = np.frombuffer(decoded, dtype="<i2").astype(np.float64) / 32768.0
    wide = signal.resample_poly(narrow, 2, 1)
    out = np.zeros(len(clip), np.float32)  # codec2 returns whole frames: cut (or pad) to the input's length
    out[: min(len(clip), len(wide))] = wide[: len(clip)]
    return out


def soundfile_round_trip(clip: np.ndarray, codec: str, compression: float) -> np.ndarray:
    """Encode and decode in memory with libsndfile: "mp3" (MPEG-2 layer III) or "opus" (in Ogg) at 16 kHz;
    `compression` 0-1 (1: the lowest bitrate, ~8 kbps on speech)."""
    import soundfile

    formats = {"mp3": ("MP3", "MPEG_LAYER_III"), "opus": ("OGG", "OPUS")}
    buffer = io.BytesIO()
    level = min(compression, 0.99)  # libsndfile's MP3 encoder refuses 1.0
    soundfile.write(buffer, fit_peak(clip), SAMPLING_RATE, format=formats[codec][0], subtype=formats[codec][1],
                    compression_level=level)  # fmt: skip
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, dtype="float32")
    out = np.zeros(len(clip), np.float32)
    out[: min(len(clip), len(decoded))] = decoded[: len(clip)]
    return out


# ---------------------------------------------------------------------------------------------- augment
def augment(
    clip: np.ndarray,
    seed: int | np.random.Generator,
    spec: AugmentSpec | None = None,
    babble_pool: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Apply the effects of `spec` (default `AugmentSpec()`), each with its probability; returns the new 16 kHz
    float32 clip and the names of the effects applied, in order ("speed", "reverb", "noise", "babble",
    "telephone", "codec:<name>", "gain").

    `seed` (an int, or a numpy Generator the caller owns) makes the result reproducible. Each effect draws from its
    own child generator, so turning one effect off or on does not change what the others draw.
    """
    spec = spec or AugmentSpec()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    clip = np.asarray(clip, dtype=np.float32)
    if clip.ndim != 1 or len(clip) < MIN_SAMPLES:
        raise ValueError(f"augment takes a mono clip (1-D array) of at least 0.1 s, got shape {clip.shape}.")
    if not np.all(np.isfinite(clip)) or not np.any(clip):
        raise ValueError("augment takes a finite, non-silent clip; this one is silent or holds NaN/inf.")
    # One child generator per effect: each effect's draws do not depend on what the others drew.
    streams = dict(zip(("speed", "reverb", "noise", "babble", "channel", "gain"), rng.spawn(6)))
    applied = []

    def chosen(name: str, p: float) -> bool:
        return bool(streams[name].random() < p)

    if chosen("speed", spec.speed.p):
        clip = speed_perturb(clip, float(streams["speed"].uniform(*spec.speed.factor)))
        applied.append("speed")
    if chosen("reverb", spec.reverb.p):
        stream = streams["reverb"]
        rt60 = float(stream.uniform(*spec.reverb.rt60))
        ratio = float(stream.uniform(*spec.reverb.direct_to_reverberant_db))
        clip = reverberate(clip, room_impulse_response(rt60, ratio, stream))
        applied.append("reverb")
    if chosen("noise", spec.noise.p):
        stream = streams["noise"]
        color = spec.noise.colors[int(stream.integers(len(spec.noise.colors)))]
        clip = mix_at_snr(clip, colored_noise(len(clip), color, stream), float(stream.uniform(*spec.noise.snr_db)))
        applied.append("noise")
    if chosen("babble", spec.babble.p) and babble_pool:
        stream = streams["babble"]
        speakers = int(stream.integers(spec.babble.speakers[0], spec.babble.speakers[1] + 1))
        babble = babble_noise(len(clip), babble_pool, speakers, stream)
        if np.any(babble):
            clip = mix_at_snr(clip, babble, float(stream.uniform(*spec.babble.snr_db)))
            applied.append("babble")
    # One channel at most: a telephone line, else a codec.
    channel = streams["channel"]
    if chosen("channel", spec.telephone.p):
        clip = telephone(clip, use_mu_law=bool(channel.random() < spec.telephone.mu_law_p))
        applied.append("telephone")
    elif channel.random() < spec.codec.p:
        codecs = [c for c in spec.codec.codecs if not (c in CODEC2_MODES and _codec2_missing())]
        if codecs:
            codec = codecs[int(channel.integers(len(codecs)))]
            if codec in CODEC2_MODES:
                clip = codec2_round_trip(clip, codec)
            else:
                clip = soundfile_round_trip(clip, codec, float(channel.uniform(*spec.codec.compression)))
            applied.append(f"codec:{codec}")
    if chosen("gain", spec.gain.p):
        clip = clip * np.float32(10 ** (float(streams["gain"].uniform(*spec.gain.db)) / 20))
        applied.append("gain")
    clip = fit_peak(clip).astype(np.float32)
    if not np.all(np.isfinite(clip)) or not np.any(clip):
        raise RuntimeError(f"Augmentation {applied} produced a silent or non-finite clip; please report this.")
    return clip, applied


__all__ = [
    "AugmentSpec",
    "Babble",
    "CODECS",
    "Codec",
    "Gain",
    "Noise",
    "Reverb",
    "Speed",
    "Telephone",
    "augment",
    "babble_noise",
    "codec2_round_trip",
    "colored_noise",
    "fit_peak",
    "mix_at_snr",
    "mu_law",
    "reverberate",
    "room_impulse_response",
    "soundfile_round_trip",
    "speed_perturb",
    "telephone",
]
