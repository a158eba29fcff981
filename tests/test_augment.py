"""Acoustic augmentation: each effect does what it says (SNR, band, tail, length), reproducibly, and specs validate."""

import math
import shutil

import numpy as np
import pytest
from scipy import signal

from voxlm.train.core import augment as aug
from voxlm.train.core.audio import read_audio
from voxlm.train.core.metrics import word_error_rate
from voxlm.train.offline import speech

RATE = aug.SAMPLING_RATE
MMT1 = speech.CODEC2_DATA / "wav/mmt1.wav"  # a real recording: "It's easy to tell the depth of a well."
requires_codec2 = pytest.mark.skipif(shutil.which("c2enc") is None, reason="codec2 (c2enc/c2dec) is not installed")


def _speechlike(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """A harmonic tone at a wandering pitch, gated like syllables: broadband up to 8 kHz, with pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    wave = sum(np.sin(k * phase) / k for k in range(1, 40)) + 0.05 * rng.standard_normal(len(t))
    gate = (np.sin(2 * np.pi * 3 * t) > -0.3).astype(float)
    return (0.3 * wave * gate / np.abs(wave).max()).astype(np.float32)


def _only(effect: str, **settings) -> aug.AugmentSpec:
    return aug.AugmentSpec.from_dict({**aug.AugmentSpec.off().to_dict(), effect: {"p": 1.0, **settings}})


def _snr_db(clean: np.ndarray, mixed: np.ndarray) -> float:
    return 10 * math.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((mixed - clean).astype(np.float64) ** 2))


# ---------------------------------------------------------------------------------------------- noise
@pytest.mark.parametrize("color", aug.NOISE_COLORS)
def test_noise_is_mixed_at_the_requested_snr(color):
    clip = _speechlike()
    for seed, snr in ((1, 5.0), (2, 12.5), (3, 30.0)):
        mixed, applied = aug.augment(clip, seed, _only("noise", snr_db=[snr, snr], colors=[color]))
        assert applied == ["noise"] and len(mixed) == len(clip)
        assert _snr_db(clip, mixed) == pytest.approx(snr, abs=0.1)


def test_noise_colors_have_their_spectral_slopes():
    rng = np.random.default_rng(0)
    slopes = {}
    for color in aug.NOISE_COLORS:
        spectrum = np.abs(np.fft.rfft(aug.colored_noise(RATE * 4, color, rng))) ** 2
        frequency = np.fft.rfftfreq(RATE * 4, 1 / RATE)
        low, high = spectrum[(frequency > 100) & (frequency < 200)].mean(), spectrum[frequency > 3200].mean()
        slopes[color] = 10 * math.log10(low / high) / math.log2(np.mean(frequency[frequency > 3200]) / 150)
    # dB per octave: 0 (white), 3 (pink, 1/f), 6 (brown, 1/f^2)
    assert slopes["white"] == pytest.approx(0, abs=0.5)
    assert slopes["pink"] == pytest.approx(3, abs=0.6)
    assert slopes["brown"] == pytest.approx(6, abs=0.8)


def test_babble_is_mixed_at_the_requested_snr_and_needs_a_pool():
    clip, pool = _speechlike(seed=0), [_speechlike(seconds, seed) for seed, seconds in ((1, 0.7), (2, 2.0), (3, 1.1))]
    mixed, applied = aug.augment(clip, 4, _only("babble", snr_db=[8.0, 8.0]), babble_pool=pool)
    assert applied == ["babble"] and _snr_db(clip, mixed) == pytest.approx(8.0, abs=0.1)
    unchanged, applied = aug.augment(clip, 4, _only("babble"))
    assert applied == [] and np.array_equal(unchanged, clip)


# --------------------------------------------------------------------------------------------- reverb
def test_reverb_adds_a_decaying_tail_and_keeps_the_onset():
    clip = np.zeros(RATE, np.float32)
    burst = slice(RATE // 4, RATE // 4 + RATE // 10)
    clip[burst] = 0.5 * np.random.default_rng(0).standard_normal(RATE // 10)
    wet, applied = aug.augment(clip, 0, _only("reverb", rt60=[0.5, 0.5], direct_to_reverberant_db=[3.0, 3.0]))
    assert applied == ["reverb"] and len(wet) == len(clip)
    assert np.abs(wet[: burst.start]).max() < 1e-6  # nothing before the onset (FFT rounding aside): no delay
    lag = np.argmax(signal.correlate(wet, clip)) - (len(clip) - 1)
    assert lag == 0  # the direct path dominates, at the onset
    after = burst.stop
    energies = [np.mean(wet[after + k * 800 : after + (k + 1) * 800] ** 2) for k in range(4)]  # 50 ms windows
    assert energies[0] > 1e-4 and all(later < earlier for earlier, later in zip(energies, energies[1:]))
    # -60 dB over rt60 = 0.5 s: energy falls ~6 dB per 50 ms (measured over 150 ms for a stable estimate).
    assert 10 * math.log10(energies[0] / energies[3]) == pytest.approx(18, abs=5)


# ------------------------------------------------------------------------------------------ telephone
@pytest.mark.parametrize("mu_law_p", [0.0, 1.0])
def test_telephone_leaves_almost_nothing_above_4_khz(mu_law_p):
    clip = _speechlike()
    line, applied = aug.augment(clip, 0, _only("telephone", mu_law_p=mu_law_p))
    assert applied == ["telephone"] and len(line) == len(clip)
    spectrum, frequency = np.abs(np.fft.rfft(line)) ** 2, np.fft.rfftfreq(len(line), 1 / RATE)
    assert spectrum[frequency > 4000].sum() < 1e-4 * spectrum.sum()
    assert spectrum[frequency < 200].sum() < 1e-2 * spectrum.sum()
    original = np.abs(np.fft.rfft(clip)) ** 2
    assert original[frequency > 4000].sum() > 1e-3 * original.sum()  # the input did have high frequencies
    if mu_law_p:
        assert not np.allclose(line, aug.augment(clip, 0, _only("telephone", mu_law_p=0.0))[0], atol=1e-4)


def test_mu_law_round_trip_is_close():
    x = np.linspace(-1, 1, 1001)
    assert np.max(np.abs(aug.mu_law(x) - x)) < 0.04 and aug.mu_law(np.zeros(1))[0] == 0


# ---------------------------------------------------------------------------------------------- codecs
@pytest.mark.parametrize("codec", aug.CODECS)
def test_codec_round_trip_keeps_the_length(codec):
    if codec.startswith("codec2") and shutil.which("c2enc") is None:
        pytest.skip("codec2 (c2enc/c2dec) is not installed")
    for seconds in (0.51, 1.3):
        clip = _speechlike(seconds)
        coded, applied = aug.augment(clip, 0, _only("codec", codecs=[codec], compression=[1.0, 1.0]))
        assert applied == [f"codec:{codec}"] and len(coded) == len(clip)
        assert np.all(np.isfinite(coded)) and np.std(coded) > 0.1 * np.std(clip)
        assert not np.allclose(coded, clip, atol=1e-3)


@pytest.mark.real
@requires_codec2
@pytest.mark.skipif(not MMT1.is_file(), reason="codec2-examples is not installed")
def test_low_bitrate_codecs_stay_intelligible():
    recording = read_audio(str(MMT1))
    text = "It's easy to tell the depth of a well."
    clips = [aug.codec2_round_trip(recording, "codec2-1300"), aug.soundfile_round_trip(recording, "mp3", 1.0)]
    hypotheses = speech.transcribe(clips)
    assert word_error_rate([text] * 2, hypotheses) <= 0.15, hypotheses


# -------------------------------------------------------------------------------------- speed and gain
@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_the_length_by_the_factor(factor):
    clip = _speechlike()
    faster, applied = aug.augment(clip, 0, _only("speed", factor=[factor, factor]))
    assert applied == ["speed"] and len(faster) == math.ceil(len(clip) / factor)


def test_gain_scales_and_never_clips():
    clip = _speechlike()
    quieter, _ = aug.augment(clip, 0, _only("gain", db=[-6.0, -6.0]))
    np.testing.assert_allclose(quieter, clip * 10 ** (-6 / 20), rtol=1e-5)
    louder, _ = aug.augment(clip, 0, _only("gain", db=[20.0, 20.0]))
    assert np.abs(louder).max() == pytest.approx(aug.PEAK)
    np.testing.assert_allclose(louder / np.abs(louder).max(), clip / np.abs(clip).max(), atol=1e-6)


# --------------------------------------------------------------------------------------- the pipeline
def test_augment_is_deterministic_by_seed():
    clip, pool = _speechlike(), [_speechlike(1.0, seed) for seed in (5, 6)]
    everything = aug.AugmentSpec.from_dict({name: {"p": 1.0} for name in aug.AugmentSpec().to_dict()})
    first, applied = aug.augment(clip, 11, everything, babble_pool=pool)
    again, _ = aug.augment(clip, 11, everything, babble_pool=pool)
    assert np.array_equal(first, again)
    assert applied == ["speed", "reverb", "noise", "babble", "telephone", "gain"]  # one channel: telephone wins at p=1
    assert not np.array_equal(first, aug.augment(clip, 12, everything, babble_pool=pool)[0])
    generator = np.random.default_rng(11)  # a caller's generator advances: two calls differ
    assert not np.array_equal(aug.augment(clip, generator, everything)[0], aug.augment(clip, generator, everything)[0])


def test_effects_draw_independently():
    clip = _speechlike()
    room = {"speed": {"p": 1.0}, "reverb": {"p": 1.0}}
    dry = aug.augment(clip, 21, aug.AugmentSpec.from_dict({**aug.AugmentSpec.off().to_dict(), **room}))[0]
    spec = aug.AugmentSpec.from_dict({**aug.AugmentSpec.off().to_dict(), **room, "noise": {"p": 1.0, "snr_db": 9}})
    noisy, applied = aug.augment(clip, 21, spec)
    # The same speed and room were drawn with noise on: the difference is the noise alone, at its SNR.
    assert applied == ["speed", "reverb", "noise"] and _snr_db(dry, noisy) == pytest.approx(9.0, abs=0.1)


def test_default_recipe_never_returns_nan_silence_or_a_wrong_length():
    clip, pool = _speechlike(0.8), [_speechlike(0.5, 9)]
    spec = aug.AugmentSpec()
    seen = set()
    for seed in range(60):
        out, applied = aug.augment(clip, seed, spec, babble_pool=pool)
        seen.update(applied)
        assert out.dtype == np.float32 and np.all(np.isfinite(out)) and np.abs(out).max() <= 1.0
        assert np.sqrt(np.mean(out**2)) > 1e-3
        expected = len(clip) if "speed" not in applied else None
        assert expected is None or len(out) == expected
        assert math.floor(len(clip) / 1.1) <= len(out) <= math.ceil(len(clip) / 0.9)
    assert {"speed", "reverb", "noise", "babble", "gain"} <= seen and seen & {"telephone"}


def test_augment_refuses_silent_or_bad_clips():
    with pytest.raises(ValueError, match="non-silent"):
        aug.augment(np.zeros(1600, np.float32), 0)
    with pytest.raises(ValueError, match="mono clip"):
        aug.augment(np.ones((2, 1600), np.float32), 0)
    with pytest.raises(ValueError, match="at least 0.1 s"):
        aug.augment(np.ones(100, np.float32), 0)


# ---------------------------------------------------------------------------------------------- specs
def test_spec_from_dict_turns_on_only_the_named_effects_and_round_trips():
    spec = aug.AugmentSpec.from_dict({"noise": {"p": 0.5, "snr_db": [0, 10], "colors": "pink"}, "gain": {}})
    assert spec.noise == aug.Noise(p=0.5, snr_db=(0.0, 10.0), colors=("pink",)) and spec.reverb == aug.Reverb(p=0.0)
    assert spec.gain == aug.Gain()  # named without settings: its defaults, probability included
    assert aug.AugmentSpec.from_dict(spec.to_dict()) == spec
    assert aug.AugmentSpec.from_dict(aug.AugmentSpec().to_dict()) == aug.AugmentSpec()
    assert aug.AugmentSpec.from_dict(None) == aug.AugmentSpec.off()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"echo": {"p": 1}}, "Unknown augmentation effect(s) ['echo']; the effects are ['speed', 'reverb'"),
        ({"noise": {"snr": [1, 2]}}, "Unknown key(s) ['snr'] in augment.noise; allowed: ['p', 'snr_db', 'colors']"),
        ({"noise": {"colors": ["blue"]}}, "noise.colors must be a non-empty list of ['white', 'pink', 'brown']"),
        ({"gain": {"p": 1.5}}, "gain.p must be a probability in [0, 1], got 1.5"),
        ({"reverb": {"rt60": [0.9, 0.2]}}, "reverb.rt60 must be [min, max] with min <= max"),
        ({"speed": {"factor": [0.2, 1.0]}}, "speed.factor must lie within [0.5, 2.0]"),
        ({"codec": {"codecs": ["gsm"]}}, "codec.codecs must be a non-empty list of ['codec2-3200'"),
        ({"babble": {"speakers": [1.5, 3]}}, "babble.speakers must be whole numbers"),
        ({"telephone": 0.3}, "augment.telephone must be a mapping like {p: 0.3, ...}"),
    ],
)
def test_bad_spec_names_the_key_and_the_allowed_ones(config, message):
    with pytest.raises(ValueError) as error:
        aug.AugmentSpec.from_dict(config)
    assert message in str(error.value)
