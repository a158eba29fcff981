"""SpeechVerse-style curriculum on the offline stack, end to end: synthetic data, training, WER before and after.

    python examples/curriculum_offline.py --quick                       # ~10 min on 2 busy cores: every step
    python examples/curriculum_offline.py --sentences 4000 --processes 2  # the recipe's budgets (hours on 2 cores)
    python examples/curriculum_offline.py --sentences 2000 --steps align=500,adapter=200,lora_asr=80,multitask=160
                                                                         # README's run: about an hour here
    python examples/curriculum_offline.py ... --resume                   # continue a stopped run

1. Builds the data sets `train/configs/curriculum_offline.yaml` reads (skipped when they exist):
   ASR on varied sentences spoken by espeak-ng's training voices, held-out sentences in held-out voices, the real
   recordings of the offline stack, spoken questions with one-word answers, and sentence types.
2. Runs the curriculum (CTC warm-up, adapter, LoRA on ASR, multitask) with `accelerate launch`, Whisper tiny.en as
   the encoder and SmolLM2-135M-Instruct as the LLM (converted from their PyPI packages, no Hub access).
3. Prints the WER on held-out voices and real recordings at the start and after every stage, and the wall time,
   and writes them to `<output>/results.json`.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml

CONFIG = Path(__file__).resolve().parent.parent / "train" / "configs" / "curriculum_offline.yaml"
QUICK = {"align": 10, "adapter": 6, "lora_asr": 4, "multitask": 6}  # --quick: steps per stage


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="runs/offline-speech", help="where the data sets are built")
    parser.add_argument("--output", default="runs/curriculum-offline", help="the run's output folder")
    parser.add_argument("--sentences", type=int, default=3000, help="training sentences (ASR)")
    parser.add_argument("--heldout_sentences", type=int, default=200, help="held-out sentences (held-out voices)")
    parser.add_argument("--processes", type=int, default=1, help="data-parallel processes (CPU: gloo)")
    parser.add_argument("--quick", action="store_true", help="tiny data and step budgets: check the pipeline")
    parser.add_argument(
        "--steps",
        type=parse_steps,
        default={},
        metavar="STAGE=N,...",
        help="override stage step budgets, e.g. 'align=500,adapter=200' (the recipe's budgets take hours here)",
    )
    parser.add_argument("--resume", action="store_true", help="continue a stopped run")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def parse_steps(text: str) -> dict[str, int]:
    """'align=500,adapter=200' -> {'align': 500, 'adapter': 200}."""
    try:
        return {name.strip(): int(steps) for name, steps in (item.split("=") for item in text.split(",") if item)}
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected STAGE=N,... e.g. 'align=500,adapter=200', got {text!r}") from error


def training_voices(split: str):
    """The espeak-ng voices of `split`; voices Whisper tiny.en cannot hear (whispered speech) are left out."""
    from voxlm.train.offline.speech import voices

    try:
        return voices(split, max_wer=0.6)
    except ValueError:  # audibility not measured on this machine: drop the whispered variant by name
        return [voice for voice in voices(split) if voice.variant != "whisper"]


def build_data(folder: Path, train_sentences: int, heldout_sentences: int, seed: int) -> None:
    """Synthesize the data sets with espeak-ng (16 kHz float arrays) and save them with `save_to_disk`."""
    from voxlm.train.offline.sentences import SENTENCE_KINDS, sentences, spoken_questions
    from voxlm.train.offline.speech import recordings_dataset, synthetic_speech_dataset

    folder.mkdir(parents=True, exist_ok=True)
    train_voices, heldout_voices = training_voices("train"), training_voices("held_out")

    def save(name: str, build) -> None:
        if (folder / name / "state.json").is_file():
            return
        started = time.time()
        dataset = build()
        dataset.save_to_disk(str(folder / name))
        print(f"built {name}: {len(dataset)} rows in {time.time() - started:.0f} s", flush=True)

    def spoken(texts, voice_list, offset, **columns):
        dataset = synthetic_speech_dataset(texts, voice_list, seed=seed + offset)
        for column, values in columns.items():
            dataset = dataset.add_column(column, values)
        return dataset

    save("asr_train", lambda: spoken(sentences(train_sentences, "train", seed), train_voices, 0))
    save("asr_heldout", lambda: spoken(sentences(heldout_sentences, "held_out", seed), heldout_voices, 1))
    save("asr_real", lambda: recordings_dataset())
    for split, voice_list, offset in (("train", train_voices, 2), ("heldout", heldout_voices, 3)):
        questions = spoken_questions("train" if split == "train" else "held_out")
        save(
            f"qa_{split}",
            lambda q=questions, v=voice_list, o=offset: spoken(
                [item.question for item in q], v, o, answer=[item.answer for item in q]
            ),
        )
        per_kind = max(train_sentences // 10, 20) if split == "train" else max(heldout_sentences // 10, 8)
        texts, kinds = [], []
        for kind in SENTENCE_KINDS:
            chosen = sentences(per_kind, "train" if split == "train" else "held_out", seed + 7, kinds=(kind,))
            texts, kinds = texts + chosen, kinds + [kind] * len(chosen)
        save(f"type_{split}", lambda t=texts, k=kinds, v=voice_list, o=offset: spoken(t, v, o + 2, kind=k))


def write_recipe(args, output: Path) -> Path:
    """The shipped recipe with this run's paths (and, for --quick, tiny step budgets)."""
    from voxlm.train.core.config import load_yaml

    recipe = load_yaml(str(CONFIG))  # expands VOXLM_* set by `main`
    if args.quick:  # small batches, few steps, small evaluation sets: every part runs, nothing learns much
        for stage in recipe["stages"]:
            stage["max_steps"] = QUICK[stage["name"]]
            stage.pop("early_stopping_patience", None)
        evaluated = {name for stage in recipe["stages"] for name in stage.get("eval_datasets", [])}
        for name in evaluated:
            recipe["datasets"][name]["max_samples"] = 8
        recipe["batching"].update(max_seconds=12, max_batch_size=4)  # the quick run learns nothing: WER stays > 1
        recipe["training"].update(eval_steps=1000, save_steps=1000, warmup_steps=2, logging_steps=2)
        recipe["evaluation"].update(examples=4, max_new_tokens=16)
    stage_names = [stage["name"] for stage in recipe["stages"]]
    unknown = sorted(set(args.steps) - set(stage_names))
    if unknown:
        raise SystemExit(f"--steps names unknown stages {unknown}; the recipe's stages are {stage_names}")
    for stage in recipe["stages"]:
        stage["max_steps"] = args.steps.get(stage["name"], stage["max_steps"])
    output.mkdir(parents=True, exist_ok=True)
    path = output / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def report(output: Path, seconds: float) -> dict:
    """WER on held-out voices and real recordings at the start and after every stage."""
    summary = json.loads((output / "final" / "training_summary.json").read_text())
    rows = []
    for stage in summary["stages"]:
        metrics = stage["metrics"]
        rows.append(
            {
                "stage": stage["name"],
                "steps": stage["steps"],
                "seconds": round(stage["seconds"]),
                **{
                    f"{name} {key}": metrics[name][key]
                    for name, key in (
                        ("asr_heldout_voices", "wer"),
                        ("asr_real", "wer"),
                        ("qa_heldout", "f1"),
                        ("type_heldout", "accuracy"),
                    )
                    if key in metrics.get(name, {})
                },
            }
        )
    results = {"wall_seconds": round(seconds), "stages": rows}
    (output / "results.json").write_text(json.dumps(results, indent=2))
    keys = list(dict.fromkeys(key for row in rows for key in row))
    print("\n" + " | ".join(keys))
    for row in rows:
        print(" | ".join(f"{row[k]:.3f}" if isinstance(row.get(k), float) else str(row.get(k, "-")) for k in keys))
    print(f"wall time: {seconds / 60:.1f} min")
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.sentences, args.heldout_sentences = min(args.sentences, 240), min(args.heldout_sentences, 40)
    from voxlm.train.core.launch import run_accelerate
    from voxlm.train.offline.assets import smollm2_dir, whisper_tiny_en_dir

    started = time.time()
    data, output = Path(args.data).resolve(), Path(args.output).resolve()
    os.environ.update(
        VOXLM_DATA=str(data),
        VOXLM_RUN=str(output),
        VOXLM_WHISPER=str(whisper_tiny_en_dir()),
        VOXLM_SMOLLM2=str(smollm2_dir()),
        HF_HUB_OFFLINE="1",
    )
    recipe = write_recipe(args, output)  # first: a bad --steps fails before minutes of speech synthesis
    build_data(data, args.sentences, args.heldout_sentences, args.seed)
    arguments = ["--config", str(recipe)] + (["--resume_from_checkpoint"] if args.resume else [])
    result = run_accelerate("voxlm.train.curriculum", arguments, args.processes)
    if result.returncode != 0:
        return result.returncode
    report(output, time.time() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
