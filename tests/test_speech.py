"""Offline speech data: espeak-ng synthesis, the voice catalogue, text generators, real recordings, datasets."""

import io
import re
import shutil
import subprocess

import numpy as np
import pytest
import soundfile
from scipy.signal import resample_poly

from voxlm.train.offline import sentences as text
from voxlm.train.offline import speech

requires_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
requires_recordings = pytest.mark.skipif(
    not speech.POCKETSPHINX_DATA.is_dir(), reason="pocketsphinx-testdata is not installed"
)


# ----------------------------------------------------------------------------------------------- synthesis
@requires_espeak
def test_synthesize_is_espeak_output_resampled_to_16k():
    wave = speech.synthesize("The birch canoe slid on the smooth planks.", voice="en-gb", speed=160, pitch=40)
    raw = subprocess.run(
        ["espeak-ng", "-v", "en-gb", "-s", "160", "-p", "40", "--stdout"],
        input=b"The birch canoe slid on the smooth planks.",
        capture_output=True,
        check=True,
    ).stdout
    reference, rate = soundfile.read(io.BytesIO(raw), dtype="float32")
    assert rate == speech.ESPEAK_SAMPLING_RATE
    assert wave.dtype == np.float32 and wave.ndim == 1
    np.testing.assert_allclose(wave, resample_poly(reference, 320, 441), atol=1e-6)
    assert 1.5 < len(wave) / 16000 < 4.0 and 0.05 < np.abs(wave).max() <= 1.0


@requires_espeak
def test_synthesize_speed_pitch_and_determinism():
    sentence = "Please bring the red umbrella to the kitchen."
    slow, fast = speech.synthesize(sentence, speed=120), speech.synthesize(sentence, speed=240)
    assert len(fast) < 0.7 * len(slow)
    assert np.array_equal(speech.synthesize(sentence), speech.synthesize(sentence))
    low, high = speech.synthesize(sentence, pitch=10), speech.synthesize(sentence, pitch=90)
    assert not np.array_equal(low, high)
    native = speech.synthesize(sentence, sampling_rate=22050)
    assert abs(len(native) * 16000 / 22050 - len(speech.synthesize(sentence))) <= 1


@requires_espeak
def test_synthesize_reads_text_starting_with_a_dash():
    assert len(speech.synthesize("-v is not an option here")) > 8000


@requires_espeak
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "  "}, "empty text"),
        ({"text": "hello", "voice": "en-us+nosuchvariant"}, "no voice variant 'nosuchvariant'"),
        ({"text": "hello", "voice": "xx-nosuchvoice"}, "espeak-ng failed for voice 'xx-nosuchvoice'"),
        ({"text": "hello", "speed": 20}, "speed must be 80-450"),
        ({"text": "hello", "pitch": 120}, "pitch must be 0-99"),
    ],
)
def test_synthesize_bad_input_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        speech.synthesize(**kwargs)


def test_missing_espeak_says_how_to_install(monkeypatch):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    speech.espeak_binary.cache_clear()
    try:
        with pytest.raises(speech.EspeakNotFoundError, match="apt-get install espeak-ng"):
            speech.synthesize("hello")
    finally:
        speech.espeak_binary.cache_clear()


@requires_espeak
def test_synthesize_many_matches_one_by_one():
    texts = ["One small step.", "What is two plus three?", "Turn off the lights."]
    voices, speeds = ["en-us", "en-gb+f3", "en-us+m3"], [150, 170, 190]
    many = speech.synthesize_many(texts, voice=voices, speed=speeds, pitch=60, num_workers=3, progress=False)
    for clip, sentence, voice, speed in zip(many, texts, voices, speeds):
        assert np.array_equal(clip, speech.synthesize(sentence, voice, speed, 60))
    with pytest.raises(ValueError, match="2 values of voice for 3 texts"):
        speech.synthesize_many(texts, voice=["en-us", "en-gb"], progress=False)


# ---------------------------------------------------------------------------------------------- voices
def test_voice_splits_are_disjoint_stable_and_cover_the_catalogue():
    train, held_out = speech.voices("train"), speech.voices("held_out")
    names = {voice.name for voice in speech.voices()}
    assert {v.name for v in train} | {v.name for v in held_out} == names
    assert not {v.name for v in train} & {v.name for v in held_out}
    assert 0.1 < len(held_out) / len(names) < 0.4
    assert len(names) == len(speech.ACCENTS) * len(speech.VARIANTS)
    assert {"en-us", "en-gb+f3", "en-us+m3"} <= names


@requires_espeak
def test_catalogue_variants_exist():
    installed = speech.espeak_variants()
    assert all(variant in installed for variant in speech.VARIANTS if variant)


def test_renditions_are_reproducible_and_within_ranges():
    catalogue = speech.voices("train")[:5]
    first, again = speech.renditions(12, catalogue, seed=3), speech.renditions(12, catalogue, seed=3)
    assert first == again and first != speech.renditions(12, catalogue, seed=4)
    by_name = {voice.name: voice for voice in catalogue}
    assert {r["voice"] for r in first} == set(by_name)  # every voice is used before any repeats
    for rendition in first:
        voice = by_name[rendition["voice"]]
        assert voice.speeds[0] <= rendition["speed"] <= voice.speeds[1]
        assert voice.pitches[0] <= rendition["pitch"] <= voice.pitches[1]


def test_audible_voices_use_the_measured_wers():
    measured = [voice for voice in speech.voices() if voice.whisper_wer is not None]
    assert len(measured) == len(speech.voices()), "voices.json must cover the catalogue"
    audible = speech.voices("held_out", max_wer=0.25)
    assert audible and all(voice.whisper_wer <= 0.25 and voice.split == "held_out" for voice in audible)
    assert len(speech.voices(max_wer=0.25)) < len(speech.voices())  # some voices really are hard to hear
    # Held-out voices are also measured one sentence at a time, as a cascade hears them: harder than packed.
    held_out = speech.voices("held_out")
    assert all(voice.whisper_wer_one_by_one is not None for voice in held_out)
    assert sum(v.whisper_wer_one_by_one for v in held_out) > sum(v.whisper_wer for v in held_out)


# --------------------------------------------------------------------------------------------- sentences
def test_sentences_are_deterministic_distinct_and_varied():
    batch = text.sentences(2000, "train", seed=1)
    assert batch == text.sentences(2000, "train", seed=1)
    assert batch != text.sentences(2000, "train", seed=2)
    assert len(set(batch)) == 2000
    assert sum(s.endswith("?") for s in batch) > 200 and sum(any(c.isdigit() for c in s) for s in batch) > 100
    assert len({s.split()[0] for s in batch}) > 50


def test_sentence_splits_are_disjoint():
    train = set(text.sentences(3000, "train", seed=0)) | set(text.sentences(3000, "train", seed=7))
    held_out = set(text.sentences(400, "held_out", seed=0)) | set(text.sentences(400, "held_out", seed=7))
    assert len(held_out) > 400 and not train & held_out


def test_sentence_kinds_and_bad_arguments():
    commands = text.sentences(50, "train", kinds=("command",))
    assert all(not s.endswith("?") for s in commands)
    with pytest.raises(ValueError, match="split must be one of"):
        text.sentences(5, "test")
    with pytest.raises(ValueError, match="Unknown sentence kinds"):
        text.sentences(5, kinds=("poetry",))


def test_number_words():
    assert [text.number_words(n) for n in (0, 13, 40, 99, 105, 1999, 20000)] == [
        "zero",
        "thirteen",
        "forty",
        "ninety nine",
        "one hundred and five",
        "one thousand nine hundred and ninety nine",
        "twenty thousand",
    ]
    assert text.normalize_text(text.number_words(742)) == "742"


def test_spoken_questions_have_correct_answers_and_disjoint_splits():
    value = {text.number_words(n): n for n in range(101)}
    operations = {"plus": int.__add__, "minus": int.__sub__, "times": int.__mul__}
    items = text.spoken_questions()
    arithmetic = [item for item in items if item.category == "arithmetic"]
    assert len(arithmetic) > 100
    for item in arithmetic:
        left, operation, right = re.fullmatch(r"What is (.+) (plus|minus|times) (.+)\?", item.question).groups()
        assert value[item.answer] == operations[operation](value[left], value[right]), item
    assert {"capital", "colour", "opposite", "sequence", "animal"} <= {item.category for item in items}
    train, held_out = text.spoken_questions("train"), text.spoken_questions("held_out")
    assert len(train) + len(held_out) == len(items) and len(held_out) >= 50
    assert not {item.question for item in train} & {item.question for item in held_out}


def test_answer_is_correct():
    five = text.SpokenQuestion("What is two plus three?", "five", "arithmetic")
    assert text.answer_is_correct("Five.", five) and text.answer_is_correct("The answer is 5", five)
    assert not text.answer_is_correct("fifty", five) and not text.answer_is_correct("four", five)
    grey = text.SpokenQuestion("What colour is an elephant?", "grey", "colour", ("gray",))
    assert text.answer_is_correct("Elephants are gray.", grey)


# ------------------------------------------------------------------------------------------ real recordings
@requires_recordings
def test_real_recordings_have_audio_and_transcripts():
    recordings = speech.real_recordings()
    by_id = {r.id: r for r in recordings}
    assert len(by_id) == len(recordings) >= 10
    librivox = by_id["librivox/sense_and_sensibility_01_austen_64kb-0880"]
    assert librivox.text == "he was not an ill disposed young man"
    assert by_id["cards/001"].text == "ten of clubs"
    for recording in recordings:
        assert recording.audio.dtype == np.float32 and recording.audio.ndim == 1 and recording.sampling_rate == 16000
        assert 0.5 < len(recording.audio) / 16000 < 15 and 0.01 < np.abs(recording.audio).max() <= 1.0
        assert recording.text and "<s>" not in recording.text
    assert [r.source for r in speech.real_recordings(["cards"])] == ["cards"] * 5
    with pytest.raises(ValueError, match="Unknown real speech sources"):
        speech.real_recordings(["youtube"])


def test_pack_clips_keeps_all_audio_under_the_limit():
    clips = [np.full(16000 * seconds, seconds, dtype=np.float32) for seconds in (5, 9, 8, 12, 3)]
    windows = speech.pack_clips(clips, ["a", "b", "c", "d", "e"], max_seconds=20, gap_seconds=0.5)
    assert [words for _, words in windows] == ["a b", "c", "d e"]  # 8 + 0.5 + 12 > 20
    assert all(len(audio) <= 20 * 16000 for audio, _ in windows)
    assert sum(int((audio > 0).sum()) for audio, _ in windows) == sum(len(clip) for clip in clips)


# ---------------------------------------------------------------------------------------------- datasets
@requires_espeak
def test_synthetic_speech_dataset_stores_arrays_or_wav_paths(tmp_path):
    texts = ["Call Anna at noon.", "Where is the station?", "It costs five dollars."]
    catalogue = speech.voices("train")[:2]
    dataset = speech.synthetic_speech_dataset(texts, catalogue, seed=5, progress=False)
    assert set(dataset.column_names) == {"audio", "sampling_rate", "text", "voice", "speed", "pitch"}
    assert dataset["text"] == texts and set(dataset["sampling_rate"]) == {16000}
    for row, rendition in zip(dataset, speech.renditions(3, catalogue, seed=5)):
        assert {key: row[key] for key in ("voice", "speed", "pitch")} == rendition
        expected = speech.synthesize(row["text"], row["voice"], row["speed"], row["pitch"])
        np.testing.assert_array_equal(speech.audio_of(row), expected)

    on_disk = speech.synthetic_speech_dataset(texts, catalogue, seed=5, wav_dir=tmp_path, progress=False)
    assert "audio" not in on_disk.column_names and len(list(tmp_path.glob("*.wav"))) == 3
    for row, array_row in zip(on_disk, dataset):
        np.testing.assert_allclose(speech.audio_of(row), array_row["audio"], atol=1 / 32768 + 1e-6)


@requires_recordings
def test_recordings_dataset():
    dataset = speech.recordings_dataset(speech.real_recordings(["cards"]))
    assert dataset.column_names == ["id", "audio", "sampling_rate", "text", "source"]
    assert dataset[0]["id"] == "cards/001" and isinstance(dataset[0]["audio"], list)
