"""BLSP behaviour alignment on the offline stack: Whisper tiny.en + SmolLM2-135M-Instruct, espeak-ng speech.

    python examples/blsp_offline.py                               # the full run (hours on a 2-core CPU)
    python examples/blsp_offline.py --warm-start runs/ctc/final   # BLSP from a VoxLM checkpoint whose adapter was
                                                                  # warmed up (e.g. by the CTC curriculum stage)
    python examples/blsp_offline.py --warm-start shipped --instruction "{transcript}" --rows 1600 \
        --continuation-tokens 48 --max-steps 300 --run-dir runs/blsp-follow
                                  # from VoxLM's shipped checkpoint, aligned to SmolLM2's replies: the transcript
                                  # is the whole request, so the model learns to reply to what it hears
    python examples/blsp_offline.py --quick                       # a few minutes: every step, end to end

Each step is skipped when its output exists, and the long ones resume, so an interrupted run continues:
  1. the offline base models (`voxlm.train.offline.assets`);
  2. continuations of N train sentences written by SmolLM2 (`align continuations`, text only, kept in the cache so
     that every later run reuses them);
  3. espeak-ng speech for those sentences in train voices Whisper tiny.en can hear -> the training table;
  4. evaluation tables in held-out voices: held-out sentences, held-out requests (their questions and commands),
     spoken questions, spoken instructions unlike any template sentence (for these three the `follow` task
     matters: the speech is the whole request), and the real recordings;
  5. Whisper + a fresh BLSP adapter + SmolLM2: the "untrained" baseline, and the start unless `--warm-start`;
  6. `align train` (adapter only; `--objective kd` for BLSP-KD), resumed from its last checkpoint;
  7. `align evaluate` of the trained model (with the cascade, Whisper tiny.en -> SmolLM2), the warm start if any,
     and the untrained model; every response is kept in `results/*.json`, the table in `summary.txt`.
The commands run through `accelerate launch -m voxlm.train.align`, exactly as a user would run them.
"""

import argparse
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from voxlm.train.core.prompts import BLSP_INSTRUCTION, TRANSCRIPT, PromptFormat
from voxlm.train.core.tables import render_table

ALL_TASKS = "continue,repeat,translate,answer,sentiment,follow"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default="runs/blsp-offline", help="Where tables, models and results go.")
    parser.add_argument("--rows", type=int, default=3000, help="Train sentences (continuations are cached).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--warm-start",
        default=None,
        help="A VoxLM folder to start from (its adapter warmed up), or 'shipped' for VoxLM's shipped checkpoint.",
    )
    parser.add_argument(
        "--instruction",
        default=BLSP_INSTRUCTION,
        help="What SmolLM2 is asked, with a {transcript} slot (default: BLSP's continuation prompt; "
        "'{transcript}' alone aligns to its replies to the transcript as a request).",
    )
    parser.add_argument("--continuation-tokens", type=int, default=64, help="Longest continuation (BLSP: 64).")
    parser.add_argument("--objective", default="blsp", choices=["blsp", "kd"])
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--save-steps", type=int, default=100)
    parser.add_argument("--eval-rows", type=int, default=40, help="Held-out sentences (and questions at most).")
    parser.add_argument("--eval-tokens", type=int, default=64, help="Longest response in the evaluation.")
    parser.add_argument("--max-voice-wer", type=float, default=0.3, help="Voices Whisper tiny.en hears this well.")
    parser.add_argument("--num-processes", type=int, default=1, help="accelerate processes for every step.")
    parser.add_argument("--quick", action="store_true", help="Tiny sizes to check the pipeline in minutes.")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.max_steps, args.eval_rows, args.eval_tokens, args.save_steps = 32, 4, 4, 24, 2
        args.run_dir = args.run_dir + "-quick"
    return args


def launch(command: str, *options, num_processes: int = 1) -> None:
    """`accelerate launch -m voxlm.train.align <command> <options>` on `num_processes` processes."""
    from voxlm.train.core.launch import run_accelerate

    arguments = [command] + [str(option) for option in options]
    print(f"$ accelerate launch -m voxlm.train.align {' '.join(arguments)}", flush=True)
    run_accelerate("voxlm.train.align", arguments, num_processes, check=True)


def step(name: str):
    print(f"\n=== {name} [{time.strftime('%H:%M:%S')}]", flush=True)


# ------------------------------------------------------------------------------------------------- data
def continuation_data(args, smollm2: Path, cache: Path) -> Path:
    """Step 2: the sentences (written once, then reused as they are) and SmolLM2's continuations of them."""
    from voxlm.train.offline.sentences import sentences

    name = f"train-{args.rows}-seed{args.seed}"
    text_file = cache / "blsp-sentences" / f"{name}.jsonl"
    if not text_file.exists():
        text_file.parent.mkdir(parents=True, exist_ok=True)
        rows = [json.dumps({"text": text}) for text in sentences(args.rows, "train", seed=args.seed)]
        text_file.write_text("\n".join(rows) + "\n")
    output = cache / "blsp-continuations" / f"smollm2-{instruction_tag(args.instruction)}{name}"
    launch(
        "continuations",
        "--data", text_file, "--audio_column", "", "--model", smollm2, "--output_dir", output,
        "--instruction", args.instruction, "--max_new_tokens", args.continuation_tokens,
        "--batch_size", 16, "--shard_size", 200,
        num_processes=args.num_processes,
    )  # fmt: skip
    return output


def instruction_tag(instruction: str) -> str:
    """Part of the cache folder's name that tells continuations of different instructions apart."""
    instruction = PromptFormat(instruction).instruction  # as `align continuations` records it
    if instruction == BLSP_INSTRUCTION:
        return ""
    if instruction.strip() == TRANSCRIPT:
        return "follow-"
    return hashlib.sha1(instruction.encode()).hexdigest()[:8] + "-"


def train_table(args, continuations: Path, run_dir: Path, voice_list) -> Path:
    """Step 3: the transcripts spoken by train voices, beside their continuations."""
    import datasets

    from voxlm.train.offline.speech import synthetic_speech_dataset

    folder = run_dir / "train-table"
    if (folder / "state.json").exists():
        return folder
    rows = datasets.load_from_disk(str(continuations / "dataset"))
    table = synthetic_speech_dataset(rows["transcript"], voice_list, seed=args.seed, wav_dir=run_dir / "wav-train")
    table = table.add_column("continuation", rows["continuation"])
    table.save_to_disk(str(folder))
    shutil.copy(continuations / "continuations.json", folder / "continuations.json")  # the prompt to train with
    return folder


# Spoken instructions for the `follow` task (the speech is the whole request), unlike the template sentences of
# training (other forms, mostly other words); `unseen_instructions` drops any that is a training sentence or among
# the spoken QA questions other recipes train on (after Whisper's normaliser, so "colour"/"color" still differ).
INSTRUCTIONS = (
    "Name three colors of the rainbow.",
    "Tell me a short fact about the moon.",
    "Give me two words that rhyme with cat.",
    "Suggest a name for a small brown dog.",
    "How many legs does a spider have?",
    "Write one sentence about the sea.",
    "What do bees make?",
    "List three fruits that are red.",
    "What color is the sky on a clear day?",
    "Tell me how to make a cup of tea.",
    "Say something kind to a tired friend.",
    "What is the opposite of hot?",
)


def unseen_instructions(rows: int, seed: int) -> list[str]:
    from voxlm.train.offline.sentences import normalize_text, sentences, spoken_questions

    trained = {normalize_text(text) for text in sentences(rows, "train", seed=seed)}
    trained |= {normalize_text(item.question) for item in spoken_questions()}
    return [text for text in INSTRUCTIONS if normalize_text(text) not in trained]


def speech_table(folder: Path, texts: list[str], voice_list, seed: int, wav_dir: Path, **columns) -> Path:
    """`texts` spoken in `voice_list`, with extra `columns`, saved in `folder` unless an earlier run saved them."""
    from voxlm.train.offline.speech import synthetic_speech_dataset

    if not (folder / "state.json").exists():
        table = synthetic_speech_dataset(texts, voice_list, seed=seed, wav_dir=wav_dir)
        for name, values in columns.items():
            table = table.add_column(name, values)
        table.save_to_disk(str(folder))
    return folder


def eval_tables(args, run_dir: Path, held_out_voices) -> dict[str, tuple[Path, str, str, str]]:
    """Step 4: {name: (table, audio column, transcript column, tasks)}."""
    import datasets

    from voxlm.train.offline.sentences import sentences, spoken_questions
    from voxlm.train.offline.speech import recordings_dataset

    tables = {}
    texts = sentences(args.eval_rows, "held_out", seed=args.seed)
    folder = speech_table(run_dir / "eval-held-out-voices", texts, held_out_voices, args.seed + 1, run_dir / "wav-eval")
    tables["held-out voices"] = (folder, "audio_path", "text", ALL_TASKS)
    # held-out sentences that ask for something: questions and commands
    texts = sentences(args.eval_rows, "held_out", seed=args.seed, kinds=("question", "command"))
    folder = speech_table(run_dir / "eval-requests", texts, held_out_voices, args.seed + 4, run_dir / "wav-requests")
    tables["spoken requests"] = (folder, "audio_path", "text", "follow")
    questions = spoken_questions("held_out")[: args.eval_rows]
    folder = speech_table(
        run_dir / "eval-questions",
        [q.question for q in questions],
        held_out_voices,
        args.seed + 2,
        run_dir / "wav-questions",
        answer=[q.answer for q in questions],
        aliases=[list(q.aliases) for q in questions],
    )
    tables["spoken questions"] = (folder, "audio_path", "text", "answer,follow,repeat")
    texts = unseen_instructions(args.rows, args.seed)
    folder = speech_table(
        run_dir / "eval-instructions", texts, held_out_voices, args.seed + 3, run_dir / "wav-instructions"
    )
    tables["spoken instructions"] = (folder, "audio_path", "text", "follow")
    folder = run_dir / "eval-real"
    if not (folder / "state.json").exists():
        recordings_dataset().save_to_disk(str(folder))
    tables["real recordings"] = (folder, "audio", "text", "continue,repeat")
    if args.quick:  # two instructions per table
        tables = {
            name: (path, audio, text, ",".join(tasks.split(",")[:2]))
            for name, (path, audio, text, tasks) in tables.items()
        }
    datasets.disable_progress_bars()
    return tables


# ------------------------------------------------------------------------------------------------ models
def untrained_model(args, whisper: Path, smollm2: Path, run_dir: Path) -> Path:
    """Step 5: Whisper + a fresh BLSP adapter + SmolLM2, the start of training unless there is a warm start."""
    folder = run_dir / "untrained"
    if not (folder / "config.json").exists():
        from voxlm.hub_cards import RunInfo, save_run
        from voxlm.train.core.models import ModelSpec, assemble_voxlm

        spec = ModelSpec(audio_model=str(whisper), text_model=str(smollm2), adapter="blsp", dtype=None)
        model, processor = assemble_voxlm(spec, seed=args.seed)
        info = RunInfo(
            kind="voxlm",
            base_models={
                "audio": "openai/whisper-tiny.en (offline copy)",
                "text": "HuggingFaceTB/SmolLM2-135M-Instruct (offline copy)",
            },
        )
        save_run(folder, model, processor, info)
    return folder


def check_warm_start(args) -> None:
    """Fail before hours of work when --warm-start names no saved VoxLM model."""
    from voxlm.train.core.models import is_voxlm_folder

    if args.warm_start not in (None, "shipped") and not is_voxlm_folder(args.warm_start):
        raise SystemExit(
            f"--warm-start {args.warm_start}: no VoxLM model there (no config.json of model_type 'voxlm'); pass a "
            "saved model folder or 'shipped'"
        )


def warm_start_model(args, run_dir: Path) -> Path | None:
    """The --warm-start folder; 'shipped' assembles VoxLM's shipped checkpoint with the offline base models."""
    if args.warm_start != "shipped":
        return Path(args.warm_start) if args.warm_start else None
    folder = run_dir / "shipped"
    if not (folder / "config.json").exists():
        from voxlm.train.offline.shipped import hub_folder

        hub_folder(folder)
    return folder


def train(args, table: Path, start: Path, run_dir: Path) -> Path:
    """Step 6: adapter-only BLSP (or BLSP-KD), resumed from the last checkpoint if there is one."""
    from voxlm.train.core.trainer import last_complete_checkpoint

    output = run_dir / f"{args.objective}-trained"
    if (output / "align_settings.json").exists():
        return output
    options = [
        "--data", table, "--model", start, "--output_dir", output, "--objective", args.objective,
        "--audio_column", "audio_path", "--transcript_column", "text",
        "--max_steps", args.max_steps, "--per_device_train_batch_size", args.batch_size,
        "--learning_rate", args.learning_rate, "--warmup_steps", 0.05, "--lr_scheduler_type", "cosine",
        "--save_steps", args.save_steps, "--save_total_limit", 1, "--logging_steps", 1 if args.quick else 10,
        "--train_sampling_strategy", "group_by_length", "--seed", args.seed,
    ]  # fmt: skip
    last = last_complete_checkpoint(str(output), world_size=args.num_processes)
    if last:
        options += ["--resume_from_checkpoint", last]
    launch("train", *options, num_processes=args.num_processes)
    return output


def evaluate(args, model: Path, tables: dict, whisper: Path, run_dir: Path, label: str, cascade: bool) -> dict:
    """Step 7 for one model: `align evaluate` on every table; results cached as JSON."""
    results = {}
    for name, (table, audio_column, transcript_column, tasks) in tables.items():
        output = run_dir / "results" / f"{label}-{name.replace(' ', '-')}.json"
        if not output.exists():
            options = [
                "--model", model, "--data", table, "--output_file", output, "--tasks", tasks,
                "--audio_column", audio_column, "--transcript_column", transcript_column,
                "--limit", args.eval_rows, "--template", "chat", "--max_new_tokens", args.eval_tokens,
                "--examples", args.eval_rows,  # every response is kept in the results
            ]  # fmt: skip
            if cascade:
                options += ["--cascade_asr_model", whisper]
            launch("evaluate", *options)
        results[name] = json.loads(output.read_text())
    return results


COLUMNS = (  # (header, task, score)
    ("continue cos", "continue", "cosine"),
    ("continue chrF", "continue", "chrf"),
    ("repeat WER", "repeat", "wer"),
    ("QA acc", "answer", "accuracy"),
    ("follow acc", "follow", "accuracy"),
    ("follow cos", "follow", "cosine"),
    ("follow chrF", "follow", "chrf"),
)


def summary(systems: dict[str, dict]) -> str:
    """One line per evaluation table and system ({system: {table: results}}; the cascade is in "trained")."""
    systems = {**systems, "cascade": systems["trained"]}
    rows = []
    for name in systems["trained"]:
        for system, results in systems.items():
            key = "cascade" if system == "cascade" else "speech"
            tasks = results[name]["tasks"]
            cells = [tasks.get(task, {}).get("scores", {}).get(key, {}).get(score) for _, task, score in COLUMNS]
            rows.append([name, system, *cells])
    return render_table(["data", "system", *[header for header, _, _ in COLUMNS]], rows, float_format=".3f")


def main(argv=None):
    args = parse_args(argv)
    check_warm_start(args)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spin-waiting threads collapse on a busy CPU
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    from voxlm.train.offline.assets import cache_dir, minilm_dir, smollm2_dir, whisper_tiny_en_dir
    from voxlm.train.offline.speech import voices

    step("1. offline base models")
    whisper, smollm2 = whisper_tiny_en_dir(), smollm2_dir()
    minilm_dir()
    step("2. continuations")
    # The full run's continuations are kept in the cache for every later run; the quick check's stay in its folder.
    continuations = continuation_data(args, smollm2, run_dir if args.quick else cache_dir())
    step("3. training speech")
    table = train_table(args, continuations, run_dir, voices("train", max_wer=args.max_voice_wer))
    step("4. evaluation speech")
    tables = eval_tables(args, run_dir, voices("held_out", max_wer=args.max_voice_wer))
    step("5. starting model")
    untrained = untrained_model(args, whisper, smollm2, run_dir)
    warm_start = warm_start_model(args, run_dir)
    start = warm_start or untrained
    step("6. adapter training")
    trained = train(args, table, start, run_dir)
    step("7. evaluation")
    systems = {"trained": evaluate(args, trained, tables, whisper, run_dir, "trained", cascade=True)}
    if warm_start:
        systems["warm start"] = evaluate(args, warm_start, tables, whisper, run_dir, "warm-start", cascade=False)
    systems["untrained"] = evaluate(args, untrained, tables, whisper, run_dir, "untrained", cascade=False)
    report = summary(systems)
    wall = time.perf_counter() - started
    (run_dir / "summary.txt").write_text(report + f"\nwall time {wall / 60:.1f} min\n")
    print("\n" + report + f"\nwall time of this invocation: {wall / 60:.1f} min (cached steps skipped)")


if __name__ == "__main__":
    main()
