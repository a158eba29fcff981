"""A small offline study of speech tokens for classification (Calbucura & Barriere's recipe on this machine).

    python examples/classify_offline.py                      # prepare data and units, then every run (resumable)
    python examples/classify_offline.py --prepare-only       # only the datasets and the unit tokenizer
    python examples/classify_offline.py --lms minilm --seeds 0

Two spoken tasks built offline with espeak-ng, the text given without punctuation and in lower case:

* `style` (the audio decides): the same sentences spoken calmly (slow, low pitch), neutrally and excitedly (fast,
  high pitch) by many voices; every sentence appears in all three styles, so its words say nothing of the label.
* `kind` (the text decides): commands vs sentences about numbers vs sentences about people and places.

Training sentences and voices are disjoint from the test ones (the catalogue's train / held-out splits). The unit
tokenizer is k-means (scikit-learn) over a hidden layer of Whisper tiny.en, repeats merged, fitted on the training
audio. For each task and LM (all-MiniLM-L6-v2 with masked-LM adaptation, SmolLM2-135M with causal-LM adaptation)
`voxlm.train.classify` runs the four conditions (text only, Lasso-selected, random, all audio tokens) over the
seeds; `results.md` gathers macro-F1 (mean ± std over seeds) and the wall time. Everything is cached under
`--output`, so an interrupted study picks up where it stopped.
"""

import argparse
import json
import os
import random
import re
import time
from pathlib import Path

import numpy as np

from voxlm.train.core.tables import render_table

STYLES = {  # label -> (words per minute, espeak-ng pitch 0-99) ranges
    "calm": ((115, 140), (15, 35)),
    "neutral": ((160, 185), (42, 58)),
    "excited": ((215, 250), (72, 95)),
}
KINDS = ("command", "numbers", "people_and_places")
STYLE_SENTENCE_KINDS = ("statement", "command", "numbers", "people_and_places")
LMS = ("minilm", "smollm2")
# What each LM trains with: MiniLM is small enough for more epochs; SmolLM2 (135 M) gets fewer, larger steps.
LM_SETTINGS = {
    "minilm": {
        "adaptation": {"epochs": 1, "learning_rate": 3e-3, "batch_size": 16},
        "finetune": {"epochs": 8, "learning_rate": 1e-3, "batch_size": 16},
    },
    "smollm2": {
        "adaptation": {"epochs": 1, "learning_rate": 3e-3, "batch_size": 16},
        "finetune": {"epochs": 3, "learning_rate": 1e-3, "batch_size": 16},
    },
}


def plain_text(sentence: str) -> str:
    """Lower case, no punctuation: the words only (a question mark would give the style task away)."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", sentence.lower())).strip()


def style_task(num_sentences: int, split: str, seed: int) -> list[dict]:
    """Each sentence in the three styles, each clip by a voice of the split drawn at random."""
    from voxlm.train.offline.speech import sentences, voices

    rng = random.Random(f"style-{split}-{seed}")
    voice_list = voices("train" if split == "train" else "held_out")
    rows = []
    for sentence in sentences(num_sentences, split="train" if split == "train" else "held_out", seed=seed,
                              kinds=STYLE_SENTENCE_KINDS):  # fmt: skip
        for label, (speeds, pitches) in STYLES.items():
            voice = rng.choice(voice_list)
            rows.append(
                {
                    "transcript": sentence,
                    "label": label,
                    "voice": voice.name,
                    "speed": rng.randint(*speeds),
                    "pitch": rng.randint(*pitches),
                }
            )
    return rows


def kind_task(num_per_kind: int, split: str, seed: int) -> list[dict]:
    """Sentences of three kinds, each spoken once by a voice of the split with its own speed and pitch range."""
    from voxlm.train.offline.speech import renditions, sentences, voices

    voice_list = voices("train" if split == "train" else "held_out")
    rows = []
    for kind in KINDS:
        texts = sentences(num_per_kind, split="train" if split == "train" else "held_out", seed=seed, kinds=(kind,))
        for text, rendition in zip(texts, renditions(len(texts), voice_list, seed=1000 * KINDS.index(kind) + seed)):
            rows.append({"transcript": text, "label": kind, **rendition})
    return rows


def synthesize_rows(rows: list[dict]) -> list[np.ndarray]:
    from voxlm.train.offline.speech import synthesize_many

    return synthesize_many(
        [row["transcript"] for row in rows],
        voice=[row["voice"] for row in rows],
        speed=[row["speed"] for row in rows],
        pitch=[row["pitch"] for row in rows],
    )


def prepare(output: Path, args: argparse.Namespace) -> tuple[Path, dict[str, Path]]:
    """Speech for both tasks, the unit tokenizer fitted on the training audio, and one dataset per task."""
    from datasets import ClassLabel, Dataset, DatasetDict
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    from voxlm.processing import SpeechUnitTokenizer
    from voxlm.train.offline.assets import whisper_tiny_en_dir

    units_dir, data_dirs = output / "units", {task: output / "data" / task for task in args.tasks}
    if units_dir.is_dir() and all(path.is_dir() for path in data_dirs.values()):
        return units_dir, data_dirs
    started = time.perf_counter()
    builders = {
        "style": lambda split, n: style_task(n, split, args.data_seed),
        "kind": lambda split, n: kind_task(n, split, args.data_seed),
    }
    sizes = {"train": args.train_sentences, "test": args.test_sentences}
    rows = {(task, split): builders[task](split, sizes[split]) for task in args.tasks for split in sizes}
    audio = {}
    for key, key_rows in rows.items():
        print(f"synthesizing {key[0]}/{key[1]}: {len(key_rows)} clips", flush=True)
        audio[key] = synthesize_rows(key_rows)
    if units_dir.is_dir():
        units = SpeechUnitTokenizer.from_pretrained(units_dir)
    else:
        whisper_dir = whisper_tiny_en_dir()
        units = SpeechUnitTokenizer.from_parts(
            WhisperForConditionalGeneration.from_pretrained(whisper_dir),
            feature_extractor=WhisperFeatureExtractor.from_pretrained(whisper_dir),
            layer=args.layer,
            num_units=args.num_units,
            merge_repeats=True,
            frame_pooling=args.frame_pooling,
        ).eval()
        training_audio = [clip for (task, split), clips in audio.items() if split == "train" for clip in clips]
        print(f"fitting {args.num_units} k-means units on {len(training_audio)} training clips", flush=True)
        units.fit_kmeans(training_audio, sampling_rate=16000, seed=args.data_seed)
        units.save_pretrained(units_dir)
    for task in args.tasks:
        splits = {}
        names = list(STYLES) if task == "style" else list(KINDS)
        for split in sizes:
            key_rows = rows[(task, split)]
            tokens = units.tokenize(audio[(task, split)], sampling_rate=16000)
            columns = {name: [row[name] for row in key_rows] for name in ("transcript", "voice", "speed", "pitch")}
            columns.update(
                text=[plain_text(row["transcript"]) for row in key_rows],
                audio_tokens=tokens,
                label=[names.index(row["label"]) for row in key_rows],
                seconds=[len(clip) / 16000 for clip in audio[(task, split)]],
            )
            dataset = Dataset.from_dict(columns)
            splits[split] = dataset.cast_column("label", ClassLabel(names=names))
        DatasetDict(splits).save_to_disk(str(data_dirs[task]))
    print(f"prepared data and units in {time.perf_counter() - started:.0f} s", flush=True)
    return units_dir, data_dirs


def lm_dir(name: str) -> str:
    from voxlm.train.offline.assets import minilm_dir, smollm2_dir

    return str(minilm_dir() if name == "minilm" else smollm2_dir())


def run_task(task: str, lm: str, data_dir: Path, units_dir: Path, output: Path, args) -> tuple[list[dict], float]:
    from voxlm.train.classify import ClassifyConfig, run_study

    settings = LM_SETTINGS[lm]
    config = ClassifyConfig.from_dict(
        {
            "model": lm_dir(lm),
            "data": {"path": str(data_dir)},
            "units": str(units_dir),
            "output_dir": str(output / "runs" / f"{task}-{lm}"),
            "seeds": args.seeds,
            "max_length": args.max_length,
            "selection": {"C": args.C},
            "adaptation": settings["adaptation"],
            "finetune": {**settings["finetune"], "lora": {"r": 64, "alpha": 128, "dropout": 0.05}},
        }
    )
    started = time.perf_counter()
    rows = run_study(config)
    return rows, time.perf_counter() - started


def results_markdown(summaries: dict, data_dirs: dict[str, Path]) -> str:
    from datasets import load_from_disk

    lines = []
    for task, by_lm in summaries.items():
        dataset = load_from_disk(str(data_dirs[task]))
        names = dataset["train"].features["label"].names
        seconds = np.mean(dataset["test"]["seconds"])
        lines += [
            f"**{task}** ({'/'.join(names)}; {len(dataset['train'])} training and {len(dataset['test'])} test clips "
            f"of {seconds:.1f} s on average) — macro-F1 on the test split, mean ± std over seeds:",
            "",
        ]
        first = next(iter(by_lm.values()))["rows"]
        header = ["condition", *[f"{lm} macro-F1" for lm in by_lm], "audio tokens", "mean length"]
        rows = []
        for index, row in enumerate(first):
            others = [entry["rows"][index] for entry in by_lm.values()]
            cells = [f"{other['macro_f1']:.3f} ± {other['macro_f1_std']:.3f} ({other['seeds']})" for other in others]
            lengths = "/".join(f"{other['mean_length']:.0f}" for other in others)
            rows.append([row["condition"], *cells, f"{row['num_audio_tokens']:.0f}", lengths])
        lines.append(render_table(header, rows, markdown=True))
        times = ", ".join(f"{lm} {entry['seconds'] / 60:.1f} min" for lm, entry in by_lm.items())
        lines += ["", f"Wall time of this invocation: {times}.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="runs/classify-offline", help="cache and results folder")
    parser.add_argument("--tasks", nargs="+", default=["style", "kind"], choices=["style", "kind"])
    parser.add_argument("--lms", nargs="+", default=list(LMS), choices=LMS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--train-sentences", type=int, default=40, help="per style (style) or per kind (kind)")
    parser.add_argument("--test-sentences", type=int, default=20, help="per style (style) or per kind (kind)")
    parser.add_argument("--layer", type=int, default=1, help="Whisper tiny.en hidden state clustered into units")
    parser.add_argument("--num-units", type=int, default=128, help="k-means clusters")
    parser.add_argument("--frame-pooling", type=int, default=2, help="encoder frames averaged into one unit")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L1 strength of the Lasso selection")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--prepare-only", action="store_true")
    args = parser.parse_args(argv)

    output = Path(args.output)
    started = time.perf_counter()
    units_dir, data_dirs = prepare(output, args)
    if args.prepare_only:
        return
    summaries = {task: {} for task in args.tasks}
    for lm in args.lms:
        for task in args.tasks:
            print(f"=== {task} / {lm} ===", flush=True)
            rows, seconds = run_task(task, lm, data_dirs[task], units_dir, output, args)
            summaries[task][lm] = {"rows": rows, "seconds": seconds}
    report = results_markdown(summaries, data_dirs)
    total = time.perf_counter() - started
    report += f"\nTotal wall time of this invocation: {total / 60:.1f} min ({os.cpu_count()} CPU cores).\n"
    (output / "results.md").write_text(report)
    (output / "results.json").write_text(json.dumps({"summaries": summaries, "seconds": total}, indent=1))
    print(report)


if __name__ == "__main__":
    main()
