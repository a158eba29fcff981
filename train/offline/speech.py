"""Speech data for VoxLM recipes, tests and demos, all offline.

- `synthesize(text, voice, speed, pitch)` / `synthesize_many(...)`: English speech from espeak-ng, as 16 kHz float32.
- `voices(split, max_wer)`: a catalogue of 80 English espeak-ng voices (8 accents x 10 variants, with speed and pitch
  ranges), split deterministically into train (60) and held-out (20) voices, each with the word error rate of
  Whisper tiny.en on it, measured by `python -m voxlm.train.offline.speech measure-voices` and stored in `voices.json`
  beside this file. `voices("held_out", max_wer=0.3)` gives the held-out voices Whisper tiny.en can hear.
- `sentences(...)`, `spoken_questions(...)`: varied English text and spoken questions with short answers
  (see `voxlm.train.offline.sentences`).
- `real_recordings()`: the real recorded speech of the offline stack, with reference transcripts.
- `synthetic_speech_dataset(...)`, `recordings_dataset(...)`: `datasets.Dataset`s holding float arrays (or wav
  paths), never `Audio()` columns, whose decoding needs torchcodec.
- `transcribe(clips)`: Whisper tiny.en transcripts (the cascade baseline and the audibility measure).

What Whisper tiny.en hears (voices.json, 20 held-out sentences per voice): espeak-ng speech is hard for it. With
the sentences packed into 28 s windows the WER ranges from 0.14 (en-us+m5) to 0.65 (median 0.34; the whispered
en-029 voice makes it hallucinate, WER 1.9); the Scottish, West Midlands and Caribbean accents and the f4 variant
are the hardest. One sentence at a time, as a cascade hears them, WERs are 1.2-2.5x higher: the nine held-out
voices with a packed WER <= 0.3 (en-us+m1, en-us+m7, en-us+f1, en-gb+f3, en-gb+klatt, en-gb-x-rp, en-gb-x-rp+m5,
en-us-nyc+m3, en-us-nyc+klatt) score 0.26-0.41 one by one. For comparison, on the real recordings of
`real_recordings()` it scores 0.06 (LibriVox 0.04).
"""

import argparse
import dataclasses
import functools
import io
import json
import numbers
import os
import random
import shutil
import subprocess
import sys
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from transformers.utils import logging

from voxlm.processing.audio_checks import SAMPLING_RATE, load_audio
from voxlm.train.core.audio import read_audio
from voxlm.train.core.metrics import word_error_rate
from voxlm.train.core.tables import render_table

from .sentences import (
    SpokenQuestion,
    answer_is_correct,
    normalize_text,
    number_words,
    sentences,
    spoken_questions,
)

logger = logging.get_logger("voxlm.train.offline.speech")  # not __name__: it is "__main__" under `python -m`

ESPEAK_SAMPLING_RATE = 22050
DEFAULT_SPEED = 175  # espeak-ng's default words per minute
DEFAULT_PITCH = 50  # espeak-ng's default pitch (0-99)
VOICES_FILE = Path(__file__).with_name("voices.json")


# ---------------------------------------------------------------------------------------------- espeak-ng
class EspeakNotFoundError(RuntimeError):
    """espeak-ng is not installed; the message says how to install it."""


@functools.lru_cache
def espeak_binary() -> str:
    """Path of the `espeak-ng` program, or an error that says how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise EspeakNotFoundError(
            "Speech synthesis needs the espeak-ng program, which is not installed. Install it with "
            "`sudo apt-get install espeak-ng` (Debian/Ubuntu), `brew install espeak-ng` (macOS) or "
            "`sudo dnf install espeak-ng` (Fedora), or run `bash scripts/setup.sh` as root."
        )
    return path


@functools.lru_cache
def espeak_variants() -> frozenset[str]:
    """Names of the installed voice variants (`m3`, `f2`, `klatt`, ...): espeak-ng ignores unknown ones silently."""
    listing = subprocess.run([espeak_binary(), "--voices=variant"], capture_output=True, text=True, check=True)
    return frozenset(line.split()[-1].removeprefix("!v/") for line in listing.stdout.splitlines()[1:] if line.strip())


def synthesize(
    text: str,
    voice: str = "en-us",
    speed: int = DEFAULT_SPEED,
    pitch: int = DEFAULT_PITCH,
    sampling_rate: int = SAMPLING_RATE,
) -> np.ndarray:
    """Speak `text` with espeak-ng; returns mono float32 samples in [-1, 1] at `sampling_rate`.

    Args:
        voice: an espeak-ng voice, optionally with a variant: `"en-us"`, `"en-gb"`, `"en+f3"`, `"en-us+m3"`.
        speed: words per minute (espeak-ng's `-s`, 80-450; default 175).
        pitch: 0-99 (espeak-ng's `-p`; default 50).
    Each call runs one espeak-ng process, so the same arguments always give the same samples.
    """
    if not text or not text.strip():
        raise ValueError("Cannot synthesize empty text.")
    if not 80 <= speed <= 450:
        raise ValueError(f"speed must be 80-450 words per minute (espeak-ng -s), got {speed}.")
    if not 0 <= pitch <= 99:
        raise ValueError(f"pitch must be 0-99 (espeak-ng -p), got {pitch}.")
    _check_variant(voice)
    command = [espeak_binary(), "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)), "--stdout"]
    # Text goes through stdin so that text starting with "-" is never read as an option.
    result = subprocess.run(command, input=text.encode(), capture_output=True)
    if result.returncode != 0 or len(result.stdout) <= 44:
        message = result.stderr.decode(errors="replace").strip()
        raise ValueError(
            f"espeak-ng failed for voice {voice!r}: {message or 'no audio'}. List voices with `espeak-ng --voices=en`."
        )
    # espeak-ng streams a WAV whose header has no real length; soundfile reads it to the end regardless.
    return load_audio(io.BytesIO(result.stdout), sampling_rate)


def _check_variant(voice: str) -> None:
    if "+" in voice:
        variant = voice.split("+", 1)[1]
        if variant not in espeak_variants():
            raise ValueError(
                f"espeak-ng has no voice variant {variant!r} (in {voice!r}); it would silently use the default. "
                "List variants with `espeak-ng --voices=variant`."
            )


def per_item(value, n: int, name: str) -> list:
    """`value` once per item: a scalar repeated `n` times, or a sequence of exactly `n` values."""
    if isinstance(value, (str, numbers.Number)) or value is None:
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"Got {len(value)} values of {name} for {n} texts; give one value or one per text.")
    return value


def synthesize_many(
    texts: Sequence[str],
    voice: str | Sequence[str] = "en-us",
    speed: int | Sequence[int] = DEFAULT_SPEED,
    pitch: int | Sequence[int] = DEFAULT_PITCH,
    sampling_rate: int = SAMPLING_RATE,
    num_workers: int | None = None,
    progress: bool = True,
) -> list[np.ndarray]:
    """`synthesize` for many texts, in order; `voice`, `speed` and `pitch` are one value or one per text.

    Runs `num_workers` espeak-ng processes at a time (default: 2 per CPU core, at most 8). Measured on a shared 2-core
    machine: 32 ms per utterance one at a time and 20 ms with 4 processes (load ~3); 68 and 50 ms under load ~10
    (50x faster than real time). An espeak-ng process costs ~25 ms to start: one call for many lines takes ~6 ms
    per line but gives one waveform that cannot be split reliably, and in-process synthesis through libespeak-ng
    (~8 ms) is not reproducible (each utterance depends on the one before, and the library cannot be reset).
    """
    from tqdm.auto import tqdm

    texts = list(texts)
    voices = per_item(voice, len(texts), "voice")
    speeds, pitches = per_item(speed, len(texts), "speed"), per_item(pitch, len(texts), "pitch")
    espeak_binary()  # fail early, before any worker starts
    for name in set(voices):
        _check_variant(name)
    workers = num_workers or min(8, 2 * (os.cpu_count() or 1))

    def one(index: int) -> np.ndarray:
        return synthesize(texts[index], voices[index], speeds[index], pitches[index], sampling_rate)

    with ThreadPoolExecutor(workers) as pool:  # threads only wait on espeak-ng processes
        jobs = pool.map(one, range(len(texts)))
        return list(tqdm(jobs, total=len(texts), desc="espeak-ng", unit="utt", disable=not progress))


# -------------------------------------------------------------------------------------------- voices
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# espeak-ng's male (m*) and female (f*) variants, its Klatt synthesizer and whispered speech (hard to hear on purpose).
VARIANTS = (None, "m1", "m3", "m5", "m7", "f1", "f3", "f4", "klatt", "whisper")
HELD_OUT_VOICE_SHARE = 0.25


@dataclasses.dataclass(frozen=True)
class Voice:
    """An English espeak-ng voice and the speed/pitch ranges to draw from; `name` is what `-v` takes."""

    accent: str
    variant: str | None = None
    speeds: tuple[int, int] = (140, 210)
    pitches: tuple[int, int] = (25, 75)
    # Whisper tiny.en's WER on this voice (voices.json; None: not measured): on 20 sentences packed into 28 s
    # windows (all voices), and on the same sentences one by one as a cascade hears them (held-out voices).
    whisper_wer: float | None = None
    whisper_wer_one_by_one: float | None = None

    @property
    def name(self) -> str:
        return self.accent + (f"+{self.variant}" if self.variant else "")

    @property
    def split(self) -> str:
        """The voice's split, "train" or "held_out", from a stable hash of its name (independent of the catalogue)."""
        return "held_out" if zlib.crc32(self.name.encode()) % 100 < HELD_OUT_VOICE_SHARE * 100 else "train"

    def rendition(self, rng: random.Random) -> dict:
        """A concrete `{"voice", "speed", "pitch"}` drawn from this voice's ranges."""
        return {"voice": self.name, "speed": rng.randint(*self.speeds), "pitch": rng.randint(*self.pitches)}


def _measured_wers() -> dict[str, dict]:
    if not VOICES_FILE.is_file():
        return {}
    return json.loads(VOICES_FILE.read_text())["voices"]


@functools.lru_cache
def _catalogue() -> tuple[Voice, ...]:
    measured = _measured_wers()
    catalogue = []
    for accent in ACCENTS:
        for variant in VARIANTS:
            voice = Voice(accent, variant)
            entry = measured.get(voice.name, {})
            wers = {"whisper_wer": entry.get("wer"), "whisper_wer_one_by_one": entry.get("wer_one_by_one")}
            catalogue.append(dataclasses.replace(voice, **wers))
    return tuple(catalogue)


def voices(split: str | None = None, max_wer: float | None = None) -> list[Voice]:
    """The English voice catalogue, optionally one split ("train"/"held_out") and only voices on which Whisper
    tiny.en's measured WER is at most `max_wer` (voices it can hear)."""
    if split not in (None, "train", "held_out"):
        raise ValueError(f"split must be None, 'train' or 'held_out', got {split!r}")
    chosen = [voice for voice in _catalogue() if split is None or voice.split == split]
    if max_wer is not None:
        if not any(voice.whisper_wer is not None for voice in chosen):
            raise ValueError(
                f"No measured WERs in {VOICES_FILE}; run `python -m voxlm.train.offline.speech measure-voices`."
            )
        chosen = [voice for voice in chosen if voice.whisper_wer is not None and voice.whisper_wer <= max_wer]
    return chosen


def renditions(n: int, voice_list: Sequence[Voice], seed: int = 0) -> list[dict]:
    """`n` `{"voice", "speed", "pitch"}` choices cycling through `voice_list` (shuffled), reproducible by `seed`."""
    if not voice_list:
        raise ValueError("No voices to choose from.")
    rng = random.Random(seed)
    order = list(voice_list)
    chosen = []
    while len(chosen) < n:
        rng.shuffle(order)
        chosen += [voice.rendition(rng) for voice in order[: n - len(chosen)]]
    return chosen


# ----------------------------------------------------------------------------------------- real speech
@dataclasses.dataclass(frozen=True)
class Recording:
    """A real recorded utterance with its reference transcript (16 kHz float32 mono)."""

    id: str
    audio: np.ndarray
    text: str
    source: str
    sampling_rate: int = SAMPLING_RATE


POCKETSPHINX_DATA = Path("/usr/share/pocketsphinx/test/data")
ALSA_SOUNDS = Path("/usr/share/sounds/alsa")
CODEC2_DATA = Path("/usr/share/codec2")
# Transcripts that do not come with their files: pocketsphinx's own tests expect "go forward ten meters" for
# goforward.raw; TIDIGITS names a file after its digits (z = zero); speaker-test says its channel names; the codec2
# clips read sentences of the Harvard list 1 (IEEE 1969), whose text is published.
EXTRA_TRANSCRIPTS = {
    "pocketsphinx/goforward": (POCKETSPHINX_DATA / "goforward.raw", "go forward ten meters"),
    "pocketsphinx/tidigits-dhd.2934z": (POCKETSPHINX_DATA / "tidigits/dhd.2934z.raw", "two nine three four zero"),
    "codec2/speech_orig_16k": (
        CODEC2_DATA / "raw/speech_orig_16k.wav",
        "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
        "It's easy to tell the depth of a well. Four hours of steady work faced us.",
    ),
    "codec2/mmt1": (CODEC2_DATA / "wav/mmt1.wav", "It's easy to tell the depth of a well."),
}
ALSA_CHANNELS = ("Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right", "Side_Left",
                 "Side_Right")  # fmt: skip
REAL_SOURCES = ("librivox", "cards", "pocketsphinx", "alsa", "codec2")


def _sphinx_transcripts(path: Path) -> dict[str, str]:
    """`<s> words </s> (utterance-id)` lines -> {utterance id: words}."""
    transcripts = {}
    for line in path.read_text().splitlines():
        if "(" in line:
            words, utterance = line.rsplit("(", 1)
            transcripts[utterance.strip(") ")] = " ".join(w for w in words.split() if w not in ("<s>", "</s>"))
    return transcripts


def _real_files(sources: Sequence[str]) -> list[tuple[str, Path, str, str]]:
    """(id, path, transcript, source) of every real utterance whose files exist."""
    files = []
    for folder, transcript_file, source in (("librivox", "transcription", "librivox"),
                                           ("cards", "cards.transcription", "cards")):  # fmt: skip
        transcripts = POCKETSPHINX_DATA / folder / transcript_file
        if source in sources and transcripts.is_file():
            for utterance, text in _sphinx_transcripts(transcripts).items():
                files.append((f"{source}/{utterance}", POCKETSPHINX_DATA / folder / f"{utterance}.wav", text, source))
    for channel in ALSA_CHANNELS:
        files.append((f"alsa/{channel}", ALSA_SOUNDS / f"{channel}.wav", channel.replace("_", " ").lower(), "alsa"))
    for utterance, (path, text) in EXTRA_TRANSCRIPTS.items():
        files.append((utterance, path, text, utterance.split("/")[0]))
    return [entry for entry in files if entry[3] in sources and entry[1].is_file()]


def real_recordings(sources: Sequence[str] = REAL_SOURCES, sampling_rate: int = SAMPLING_RATE) -> list[Recording]:
    """Real recorded English speech with reference transcripts, from the Debian packages of the offline stack:
    LibriVox audiobook sentences and spoken card names (`pocketsphinx-testdata`), speaker-test channel names
    (`alsa-utils`), Harvard sentences (`codec2-examples`). Missing packages are skipped with a warning."""
    unknown = set(sources) - set(REAL_SOURCES)
    if unknown:
        raise ValueError(f"Unknown real speech sources {sorted(unknown)}; choose from {REAL_SOURCES}.")
    files = _real_files(sources)
    found = {source for *_, source in files}
    missing = [source for source in sources if source not in found]
    if missing:
        logger.warning(
            f"No recordings found for {missing}; install them with `sudo apt-get install pocketsphinx-testdata "
            "alsa-utils codec2-examples`."
        )
    if not files:
        raise FileNotFoundError("No real recordings are installed (see the warning above for the packages).")
    return [
        Recording(utterance, read_audio(path, sampling_rate), text, source, sampling_rate)
        for utterance, path, text, source in files
    ]


# ---------------------------------------------------------------------------------------------- datasets
def synthetic_speech_dataset(
    texts: Sequence[str],
    voice_list: Sequence[Voice] | None = None,
    seed: int = 0,
    sampling_rate: int = SAMPLING_RATE,
    wav_dir: str | os.PathLike | None = None,
    num_workers: int | None = None,
    progress: bool = True,
):
    """A `datasets.Dataset` of `texts` spoken by voices drawn from `voice_list` (default: the train voices).

    Columns: `audio` (float32 list; or, with `wav_dir`, `audio_path` to a 16-bit wav written there), `sampling_rate`,
    `text`, `voice`, `speed`, `pitch`. Read rows back with `audio_of(row)`.
    """
    from datasets import Dataset

    chosen = renditions(len(texts), voice_list or voices("train"), seed)
    clips = synthesize_many(
        texts,
        voice=[r["voice"] for r in chosen],
        speed=[r["speed"] for r in chosen],
        pitch=[r["pitch"] for r in chosen],
        sampling_rate=sampling_rate,
        num_workers=num_workers,
        progress=progress,
    )
    columns = {
        "sampling_rate": [sampling_rate] * len(texts),
        "text": list(texts),
        "voice": [r["voice"] for r in chosen],
        "speed": [r["speed"] for r in chosen],
        "pitch": [r["pitch"] for r in chosen],
    }
    if wav_dir is None:
        columns["audio"] = clips
    else:
        columns["audio_path"] = _write_wavs(clips, sampling_rate, Path(wav_dir), prefix=f"seed{seed}")
    return Dataset.from_dict(columns)


def recordings_dataset(recordings: Sequence[Recording] | None = None):
    """A `datasets.Dataset` of `real_recordings()` with columns `id`, `audio`, `sampling_rate`, `text`, `source`."""
    from datasets import Dataset

    recordings = real_recordings() if recordings is None else recordings
    return Dataset.from_dict(
        {
            "id": [r.id for r in recordings],
            "audio": [r.audio for r in recordings],
            "sampling_rate": [r.sampling_rate for r in recordings],
            "text": [r.text for r in recordings],
            "source": [r.source for r in recordings],
        }
    )


def _write_wavs(clips: Sequence[np.ndarray], sampling_rate: int, folder: Path, prefix: str) -> list[str]:
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, clip in enumerate(clips):
        path = folder / f"{prefix}-{index:06d}.wav"
        soundfile.write(path, clip, sampling_rate, subtype="PCM_16")
        paths.append(str(path))
    return paths


def audio_of(row: dict) -> np.ndarray:
    """The float32 waveform of a dataset row, from its `audio` array or its `audio_path` file."""
    if row.get("audio") is not None:
        return np.asarray(row["audio"], dtype=np.float32)
    if row.get("audio_path"):
        return read_audio(row["audio_path"], int(row.get("sampling_rate") or SAMPLING_RATE))
    raise KeyError("The row has neither an `audio` array nor an `audio_path`.")


# ------------------------------------------------------------------------------------------- transcription
@functools.lru_cache(maxsize=1)
def _whisper_tiny_en():
    from transformers import AutoProcessor, WhisperForConditionalGeneration

    from .assets import whisper_tiny_en_dir

    folder = whisper_tiny_en_dir()
    return WhisperForConditionalGeneration.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)


def transcribe(
    clips: Sequence[np.ndarray],
    sampling_rate: int = SAMPLING_RATE,
    batch_size: int = 16,
    model=None,
    processor=None,
    progress: bool = False,
) -> list[str]:
    """Transcripts of 16 kHz clips by a Whisper model (default: the offline Whisper tiny.en), greedy, batched.

    Clips longer than Whisper's 30 s window are cut at 30 s (Whisper's own short-form behaviour)."""
    import torch
    from tqdm.auto import tqdm

    if model is None or processor is None:
        model, processor = _whisper_tiny_en()
    texts = []
    for start in tqdm(range(0, len(clips), batch_size), desc="whisper", disable=not progress):
        batch = [np.asarray(clip, dtype=np.float32) for clip in clips[start : start + batch_size]]
        features = processor.feature_extractor(
            batch, sampling_rate=sampling_rate, return_attention_mask=True, return_tensors="pt"
        )
        with torch.inference_mode():
            # The length limit is the generation config's (448 tokens for Whisper): passing another one warns.
            tokens = model.generate(features.input_features.to(model.dtype), attention_mask=features.attention_mask)
        texts += [text.strip() for text in processor.batch_decode(tokens, skip_special_tokens=True)]
    return texts


# ------------------------------------------------------------------------------------- voice audibility
def pack_clips(
    clips: Sequence[np.ndarray], texts: Sequence[str], max_seconds: float = 28.0, gap_seconds: float = 0.5
) -> list[tuple[np.ndarray, str]]:
    """Join consecutive clips (with `gap_seconds` of silence) into windows of at most `max_seconds`, with their
    joined texts. Whisper pads every input to 30 s, so one packed window costs what one short clip costs."""
    gap = np.zeros(int(gap_seconds * SAMPLING_RATE), dtype=np.float32)
    windows, audio, words = [], [], []
    for clip, text in zip(clips, texts):
        length = sum(len(piece) for piece in audio) + len(gap) + len(clip)
        if audio and length > max_seconds * SAMPLING_RATE:
            windows.append((np.concatenate(audio[:-1]), " ".join(words)))
            audio, words = [], []
        audio += [np.asarray(clip, dtype=np.float32), gap]
        words.append(text)
    if audio:
        windows.append((np.concatenate(audio[:-1]), " ".join(words)))
    return windows


def measure_voice_audibility(
    voice_list: Sequence[Voice] | None = None,
    num_sentences: int = 20,
    seed: int = 0,
    one_by_one: bool = False,
    progress: bool = True,
) -> dict[str, dict]:
    """Whisper tiny.en's WER on each voice over `num_sentences` held-out sentences, speed/pitch drawn from the
    voice's ranges (seeded).

    By default the sentences are transcribed in packed windows of up to 28 s (`pack_clips`): cheap (Whisper pads
    every input to 30 s) and good for ranking voices, but the context of neighbouring sentences helps Whisper.
    `one_by_one=True` transcribes each sentence alone, as a cascade does (about 3x the compute; higher WER).
    Returns {voice name: {"wer", "split", "example_reference", "example_hypothesis"}}.
    """
    voice_list = list(voice_list or _catalogue())
    texts = sentences(num_sentences, "held_out", seed=seed)
    results = {}
    for voice in voice_list:
        chosen = renditions(num_sentences, [voice], seed=zlib.crc32(voice.name.encode()) + seed)
        clips = synthesize_many(
            texts, voice.name, [r["speed"] for r in chosen], [r["pitch"] for r in chosen], progress=False
        )
        windows = list(zip(clips, texts)) if one_by_one else pack_clips(clips, texts)
        hypotheses = transcribe([audio for audio, _ in windows])
        references = [text for _, text in windows]
        results[voice.name] = {
            "wer": round(word_error_rate(references, hypotheses), 4),
            "split": voice.split,
            "example_reference": references[0][:200],
            "example_hypothesis": hypotheses[0][:200],
        }
        if progress:
            logger.warning(f"{voice.name:<24} {voice.split:<9} WER {results[voice.name]['wer']:.3f}")
    return results


def _write_measurements(path: Path, results: dict[str, dict], args: argparse.Namespace) -> None:
    """Packed-window WERs become each voice's `wer`; one-by-one WERs are added as `wer_one_by_one`."""
    payload = json.loads(path.read_text()) if path.is_file() else {"voices": {}}
    method = "one by one" if args.one_by_one else "in windows of up to 28 s (pack_clips)"
    payload.setdefault("measured_with", {})["wer_one_by_one" if args.one_by_one else "wer"] = (
        "Whisper tiny.en (voxlm.train.offline.assets.whisper_tiny_en_dir), greedy, sentences transcribed "
        f"{method}; WER after Whisper's English normalizer; {args.sentences} held-out sentences per voice, "
        f"seed {args.seed}; speed and pitch drawn from each voice's ranges"
    )
    for name, result in results.items():
        entry = payload["voices"].setdefault(name, {})
        if args.one_by_one:
            entry["wer_one_by_one"] = result["wer"]
        else:
            entry.update(result)
    path.write_text(json.dumps(payload, indent=1) + "\n")


def _format_voice_table(voice_list: Sequence[Voice]) -> str:
    rows = [[v.name, v.split, v.whisper_wer, v.whisper_wer_one_by_one] for v in voice_list]
    return render_table(["voice", "split", "WER (packed)", "WER (one by one)"], rows, float_format=".3f")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voxlm.train.offline.speech", description="Offline speech data: espeak-ng voices and synthesis."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("voices", help="list the English voice catalogue with its measured Whisper WER")
    listing.add_argument("--split", choices=("train", "held_out"))
    listing.add_argument("--max-wer", type=float, help="only voices Whisper tiny.en hears at most this badly")
    measure = commands.add_parser("measure-voices", help=f"measure Whisper tiny.en per voice, write {VOICES_FILE.name}")
    measure.add_argument("--sentences", type=int, default=20, help="held-out sentences per voice (default 20)")
    measure.add_argument("--seed", type=int, default=0)
    measure.add_argument("--output", type=Path, default=VOICES_FILE)
    measure.add_argument("--split", choices=("train", "held_out"), help="only the voices of this split")
    measure.add_argument("--one-by-one", action="store_true", help="transcribe each sentence alone (wer_one_by_one)")
    say = commands.add_parser("say", help="synthesize a text to a 16 kHz wav file")
    say.add_argument("text")
    say.add_argument("--voice", default="en-us")
    say.add_argument("--speed", type=int, default=DEFAULT_SPEED)
    say.add_argument("--pitch", type=int, default=DEFAULT_PITCH)
    say.add_argument("--output", type=Path, default=Path("speech.wav"))
    args = parser.parse_args(argv)
    if args.command == "voices":
        print(_format_voice_table(voices(args.split, args.max_wer)))
    elif args.command == "measure-voices":
        results = measure_voice_audibility(voices(args.split), args.sentences, args.seed, args.one_by_one)
        _write_measurements(args.output, results, args)
        print(f"wrote {args.output}")
    else:
        import soundfile

        soundfile.write(args.output, synthesize(args.text, args.voice, args.speed, args.pitch), SAMPLING_RATE)
        print(f"wrote {args.output}")
    return 0


__all__ = [
    "EspeakNotFoundError",
    "Recording",
    "SpokenQuestion",
    "Voice",
    "answer_is_correct",
    "audio_of",
    "measure_voice_audibility",
    "normalize_text",
    "number_words",
    "real_recordings",
    "recordings_dataset",
    "renditions",
    "sentences",
    "spoken_questions",
    "synthesize",
    "synthesize_many",
    "synthetic_speech_dataset",
    "transcribe",
    "voices",
]

if __name__ == "__main__":
    sys.exit(main())
