"""The data of VoxLM's shipped checkpoint: which texts it hears, which it never hears, and what SmolLM2 writes.

Texts. Training speech says open English sentences (`fortunes` and `gcide` of `voxlm.train.offline.texts`) and,
for a minority, the template sentences of `voxlm.train.offline.sentences` (commands, numbers, times, names). Every
text used in any evaluation — all of WordNet's example sentences (a source never trained on), the real recordings'
transcripts, the open spoken questions and the held-out template sentences — is removed from the training texts,
exactly and by any shared run of six words (`texts.TextFilter`).

Targets written by SmolLM2 (BLSP): a share of the training sentences get SmolLM2's own continuation of the
transcript, so that the adapter learns to make the frozen LLM behave on speech as it does on text.
"""

import json
import random
from collections.abc import Sequence
from pathlib import Path

from transformers.utils import logging

logger = logging.get_logger(__name__)

TRAINING_SOURCES = ("fortunes", "gcide")
HELD_OUT_SOURCE = "wordnet"
TEMPLATE_SENTENCES = 4000
CONTINUED_OPEN, CONTINUED_TEMPLATES = 1600, 400
HELD_OUT_ENGINE = "piper"  # a whole voice engine kept for evaluation (leave-one-engine-out)
ESPEAK_MAX_WER = 0.45  # espeak-ng training voices Whisper tiny.en hears at least this well
SHARD_SIZE = 500
SAMPLING_RATE = 16000


def heldout_texts(seed: int = 0) -> list[str]:
    """Every text any evaluation of the shipped model speaks (see the module docstring)."""
    from .sentences import sentences, spoken_questions
    from .speech import real_recordings
    from .texts import OPEN_QUESTIONS, open_sentences

    texts = list(open_sentences(HELD_OUT_SOURCE))
    texts += [recording.text for recording in real_recordings()]
    texts += [question for question, _, _ in OPEN_QUESTIONS]
    texts += sentences(200, "held_out", seed) + [item.question for item in spoken_questions("held_out")]
    return texts


def training_texts(seed: int = 0) -> dict[str, list[str]]:
    """The training texts, split by use: `continue` (SmolLM2 continues them), `asr` (spoken to be repeated).

    Open sentences are shuffled with `seed`; each list mixes open and template sentences. The same arguments give
    the same lists on every machine (the Debian packages' texts are fixed by their versions).
    """
    from .sentences import sentences
    from .texts import TextFilter, available_sources, open_sentences

    keep = TextFilter(heldout_texts(seed))
    open_texts = [text for source in available_sources(TRAINING_SOURCES) for text in open_sentences(source)]
    open_texts = keep.keep(open_texts)
    random.Random(seed).shuffle(open_texts)
    templates = keep.keep(sentences(TEMPLATE_SENTENCES, "train", seed))
    continued = _interleave(open_texts[:CONTINUED_OPEN], templates[:CONTINUED_TEMPLATES])
    spoken = _interleave(open_texts[CONTINUED_OPEN:], templates[CONTINUED_TEMPLATES:])
    return {"continue": continued, "asr": spoken}


def _interleave(first: list[str], second: list[str]) -> list[str]:
    """Merge two lists evenly, each in its own order, so that any prefix of the result mixes both."""
    keyed = [((i + 0.5) / len(first), 0, text) for i, text in enumerate(first)]
    keyed += [((j + 0.5) / len(second), 1, text) for j, text in enumerate(second)]
    return [text for *_, text in sorted(keyed, key=lambda key: key[:2])]


def build_continuations(folder: Path, seed: int = 0, processes: int = 1) -> list[str]:
    """SmolLM2's continuation of every `continue` text (resumable shards under `folder / "blsp"`)."""
    from .assets import smollm2_dir
    from .shipped import continuations

    return continuations(training_texts(seed)["continue"], folder / "blsp", smollm2_dir(), processes)


# ------------------------------------------------------------------------------------------------- speech
def training_voice_specs(engine_name: str) -> list:
    """The training voices of one engine: never the held-out engine, and only espeak-ng's training voices (its
    held-out voices speak the template evaluation)."""
    from . import speech
    from .engines import catalogue

    if engine_name == HELD_OUT_ENGINE:
        raise ValueError(f"{HELD_OUT_ENGINE} is the held-out voice engine: it never speaks training text.")
    train_espeak = {voice.name for voice in speech.voices("train", max_wer=ESPEAK_MAX_WER)}
    return [
        spec
        for spec in catalogue(exclude_engines=(HELD_OUT_ENGINE,))
        if spec.engine == engine_name and (engine_name != "espeak-ng" or spec.voice in train_espeak)
    ]


def weighted_renditions(n: int, shares: dict[str, float], seed: int) -> list:
    """`n` renditions whose engines follow `shares` (engines that are not installed are left out, their share spread
    over the others), each engine cycling through its training voices; shuffled, the same for the same arguments."""
    from .engines import draw_renditions

    specs = {engine: training_voice_specs(engine) for engine in shares}
    shares = {engine: share for engine, share in shares.items() if specs[engine]}
    if not shares:
        raise ValueError("No training voice engine is installed; run `bash scripts/setup.sh` (see the warnings above).")
    total = sum(shares.values())
    counts = {engine: int(n * share / total) for engine, share in shares.items()}
    counts[max(shares, key=shares.get)] += n - sum(counts.values())
    chosen = [r for number, (engine, count) in enumerate(counts.items())
              for r in draw_renditions(count, specs[engine], seed * 100 + number)]  # fmt: skip
    random.Random(seed).shuffle(chosen)
    return chosen


def speak(
    folder: Path,
    name: str,
    texts: Sequence[str],
    renditions: Sequence,
    columns: dict[str, Sequence] | None = None,
    shard_size: int = SHARD_SIZE,
):
    """`texts[i]` spoken as `renditions[i]`, as the data set `folder/name` (`save_to_disk`).

    Built in shards of `shard_size` rows (`folder/shards/name/NNNNN`, audio as 16-bit FLAC under `folder/audio/name`),
    each written whole or not at all, so a killed build resumes at the first missing shard; a finished data set is
    reused. Columns: `audio` (file path), `text`, `duration`, `engine`, `voice`, `rate`, `pitch`, and `columns`.
    """
    import datasets
    import soundfile

    from .engines import synthesize_renditions

    target = folder / name
    if (target / "state.json").is_file():
        return datasets.load_from_disk(str(target))
    texts, columns = list(texts), {key: list(values) for key, values in (columns or {}).items()}
    shards = []
    for number, start in enumerate(range(0, len(texts), shard_size)):
        shard = folder / "shards" / name / f"{number:05d}"
        shards.append(shard)
        if (shard / "state.json").is_file():
            continue
        stop = min(start + shard_size, len(texts))
        logger.warning(f"{name}: speaking rows {start}-{stop - 1} of {len(texts)}")
        clips = synthesize_renditions(texts[start:stop], renditions[start:stop])
        audio_dir = folder / "audio" / name / f"{number:05d}"
        audio_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, clip in enumerate(clips):
            paths.append(str((audio_dir / f"{start + index:06d}.flac").resolve()))
            soundfile.write(paths[-1], clip, SAMPLING_RATE, subtype="PCM_16")
        chosen = renditions[start:stop]
        table = datasets.Dataset.from_dict(
            {
                "audio": paths,
                "text": texts[start:stop],
                "duration": [len(clip) / SAMPLING_RATE for clip in clips],
                "engine": [r.engine for r in chosen],
                "voice": [r.voice for r in chosen],
                "rate": [r.rate for r in chosen],
                "pitch": [r.pitch for r in chosen],
                **{key: values[start:stop] for key, values in columns.items()},
            }
        )
        _save_atomically(table, shard)
    whole = datasets.concatenate_datasets([datasets.load_from_disk(str(shard)) for shard in shards])
    _save_atomically(whole, target)
    return whole


def _save_atomically(table, folder: Path) -> None:
    """`save_to_disk` into a temporary folder, then rename: a kill leaves either the whole folder or none."""
    import shutil

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    table.save_to_disk(str(partial))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


# -------------------------------------------------------------------------------------------- the data sets
# Shares of the training speech per engine; Kokoro sounds most natural but costs ~0.8 CPU-s per audio second.
ENGINE_SHARES = {"espeak-ng": 0.32, "flite": 0.32, "festival": 0.28, "kokoro": 0.08}
ASR_SENTENCES = 14000
QUESTION_RENDITIONS = 3
EVAL_SIZE = 40


def build_training_data(folder: Path, seed: int = 0, processes: int = 1) -> None:
    """The training sets under `folder`: `asr_train` (open and template sentences), `continue_train` (with SmolLM2's
    continuations) and `qa_train` (template questions with their answers), spoken by the training engines."""
    from .sentences import spoken_questions

    folder.mkdir(parents=True, exist_ok=True)
    texts = training_texts(seed)
    spoken = texts["asr"][:ASR_SENTENCES]
    speak(folder, "asr_train", spoken, weighted_renditions(len(spoken), ENGINE_SHARES, seed))
    if not (folder / "continue_train" / "state.json").is_file():
        continued = build_continuations(folder, seed, processes)
        renditions = weighted_renditions(len(continued), ENGINE_SHARES, seed + 1)
        speak(folder, "continue_train", texts["continue"], renditions, columns={"continuation": continued})
    items = spoken_questions("train") * QUESTION_RENDITIONS
    renditions = weighted_renditions(len(items), ENGINE_SHARES, seed + 2)
    speak(folder, "qa_train", [q.question for q in items], renditions, columns={"answer": [q.answer for q in items]})


def heldout_engine_voices() -> list:
    """The voices of the held-out engine (empty, with a warning, when it is not installed)."""
    from .engines import catalogue

    return [spec for spec in catalogue() if spec.engine == HELD_OUT_ENGINE]


def heldout_espeak_voices() -> list:
    """espeak-ng's held-out voices that Whisper tiny.en hears reasonably (the template evaluation's voices)."""
    from . import speech
    from .engines import catalogue

    names = {voice.name for voice in speech.voices("held_out", max_wer=0.3)}
    return [spec for spec in catalogue() if spec.engine == "espeak-ng" and spec.voice in names]


def heldout_source_texts(n: int = EVAL_SIZE, seed: int = 0) -> list[str]:
    """`n` sentences of the held-out text source (at least six words each), the same for the same arguments."""
    from .texts import open_sentences

    texts = [text for text in open_sentences(HELD_OUT_SOURCE) if len(text.split()) >= 6]
    return random.Random(seed).sample(texts, n)


def _answers(questions) -> dict[str, list]:
    return {"answer": [q.answer for q in questions], "aliases": [list(q.aliases) for q in questions]}


def build_eval_data(folder: Path, seed: int = 0, size: int = EVAL_SIZE) -> dict[str, str]:
    """The evaluation sets under `folder`, none of whose texts or voices were trained on; returns name -> what.

    - `eval_heldout_engine`: held-out text source spoken by the held-out engine;
    - `eval_open_questions`: the hand-written open questions, spoken by the held-out engine;
    - `eval_real`: the real recordings;
    - `eval_templates`, `eval_template_questions`: held-out template sentences and questions in held-out espeak-ng
      voices (what the previous shipped model was trained for);
    - `eval_fit`: the first training rows (how well the model fits what it was trained on).
    """
    import datasets

    from .engines import draw_renditions
    from .sentences import sentences, spoken_questions
    from .speech import recordings_dataset
    from .texts import open_questions

    built = {}
    engine_voices = heldout_engine_voices()
    if engine_voices:
        texts = heldout_source_texts(size, seed)
        speak(folder, "eval_heldout_engine", texts, draw_renditions(size, engine_voices, seed + 20))
        questions = open_questions()[:size]
        renditions = draw_renditions(len(questions), engine_voices, seed + 21)
        speak(folder, "eval_open_questions", [q.question for q in questions], renditions, _answers(questions))
        built |= {"eval_heldout_engine": "held-out engine, held-out text", "eval_open_questions": "open questions"}
    espeak_voices = heldout_espeak_voices()
    speak(folder, "eval_templates", sentences(size, "held_out", seed), draw_renditions(size, espeak_voices, seed + 22))
    pool = spoken_questions("held_out")
    questions = [pool[i] for i in sorted(random.Random(seed).sample(range(len(pool)), min(size, len(pool))))]
    renditions = draw_renditions(len(questions), espeak_voices, seed + 23)
    speak(folder, "eval_template_questions", [q.question for q in questions], renditions, _answers(questions))
    if not (folder / "eval_real" / "state.json").is_file():
        _save_atomically(recordings_dataset(), folder / "eval_real")
    if (folder / "asr_train" / "state.json").is_file() and not (folder / "eval_fit" / "state.json").is_file():
        _save_atomically(datasets.load_from_disk(str(folder / "asr_train")).select(range(size)), folder / "eval_fit")
    built |= {"eval_templates": "held-out template sentences", "eval_template_questions": "template questions",
              "eval_real": "real recordings", "eval_fit": "training rows"}  # fmt: skip
    return built


# ------------------------------------------------------------------------------------------------- summary
TRAINING_SETS = ("asr_train", "continue_train", "qa_train")


def summarize_data(folder: Path, seed: int = 0) -> dict:
    """What the built data holds, for the card and the README: per data set its rows and hours, the training hours
    per engine, the training vocabulary (distinct words of everything spoken in training) and how many evaluation
    texts survive the held-out filter in training text (0 by construction; counted from the built rows). Written to
    `folder / "summary.json"`."""
    import datasets

    from .texts import TextFilter, vocabulary

    summary = {"sets": {}, "training_hours_per_engine": {}}
    training_texts_spoken = []
    for path in sorted(p for p in folder.iterdir() if (p / "state.json").is_file()):
        table = datasets.load_from_disk(str(path))
        hours = sum(table["duration"]) / 3600 if "duration" in table.column_names else None
        summary["sets"][path.name] = {"rows": len(table), "hours": None if hours is None else round(hours, 3)}
        if path.name in TRAINING_SETS:
            training_texts_spoken += table["text"]
            for engine, duration in zip(table["engine"], table["duration"]):
                by_engine = summary["training_hours_per_engine"]
                by_engine[engine] = by_engine.get(engine, 0.0) + duration / 3600
    summary["training_hours_per_engine"] = {k: round(v, 3) for k, v in summary["training_hours_per_engine"].items()}
    summary["training_vocabulary"] = len(vocabulary(training_texts_spoken))
    keep = TextFilter(heldout_texts(seed))
    summary["training_texts_sharing_a_heldout_text"] = sum(not keep(text) for text in training_texts_spoken)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
