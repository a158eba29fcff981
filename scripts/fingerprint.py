"""Record what VoxLM computes, so that two checkouts can be shown to behave identically.

A fingerprint holds (a) the shipped model's greedy answers to a fixed set of spoken clips (prompt, input ids, new
token ids, their text and the winning logit of every step, one clip at a time and in batches through the evaluation
helper), (b) what the recipes' audio reader makes of each kind of data set cell, and (c) the per-step training
losses, logged values and final weights of tiny runs of each recipe (the curriculum with and without a CTC stage,
align's continuations and its BLSP and BLSP-KD training, and the speech-token classification study), built from
configs with fixed seeds. Run this file with each checkout's own environment (the package is installed editable),
then compare:

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 old-checkout/.venv/bin/python scripts/fingerprint.py before.json --clips clips/
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python scripts/fingerprint.py after.json --clips clips/
    python scripts/fingerprint.py --compare before.json after.json

The comparison prints a Markdown table and every difference, and exits 1 if a value changed or went missing: token
ids and strings must be equal, floats within 1e-6. Fields only the second fingerprint has (a new metric or config
default) are listed, not failed.

The script runs unchanged on older checkouts: every module is imported from the current layout first (e.g.
`voxlm.train.offline.shipped`), then from the flat `train/` layout it replaced (`voxlm.train.shipped`). The tiny
models and data come from the `tests/` folder of the checkout being measured. The clips are synthesised with
espeak-ng (and sox, to 16 kHz) only when `--clips` holds none, so runs that share the folder read the same audio.
"""

import argparse
import contextlib
import hashlib
import importlib
import json
import math
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please turn off the lights in the kitchen.",
    "What time does the next train leave for Boston?",
    "She sold seven shells by the sea shore.",
    "Remind me to call my mother tomorrow morning.",
    "The weather today is sunny with a light breeze.",
    "Add milk, eggs and bread to the shopping list.",
    "A large red balloon floated over the old church.",
]
INSTRUCTION = "Repeat exactly what was said."
MAX_NEW_TOKENS = 32
SAMPLING_RATE = 16000
WORDS = ["play", "some", "music", "turn", "the", "lights", "off", "on", "what", "time", "is", "it", "set", "alarm"]
# Trainer log keys that depend on the computation only (runtimes and throughputs do not).
KEPT_LOG_KEYS = re.compile(r"(^|_)loss$|^grad_norm$|^learning_rate$|^epoch$")
# Keys of saved records that hold wall times or the machine.
TIMING_KEYS = re.compile(r"^(seconds|wall_seconds|cpu_seconds|hardware|date)$|_runtime$|_per_second$")
FLOAT_TOLERANCE = 1e-6
# The module each part was taken from (informational: shows which layout was measured).
USED_MODULES: dict[str, str] = {}


def import_first(*names: str):
    """The first of the module paths `names` that imports: the current layout first, then the older one."""
    for name in names:
        try:
            module = importlib.import_module(name)
            USED_MODULES[names[0]] = name
            return module
        except ModuleNotFoundError as error:
            if not name.startswith(error.name or "\0"):
                raise  # the module exists but one of its own imports is missing
    raise ModuleNotFoundError(f"none of {names} can be imported")


def repository_root() -> Path:
    """The checkout whose `voxlm` is installed (its `modeling/` folder is `voxlm.modeling`)."""
    import voxlm.modeling

    return Path(voxlm.modeling.__file__).resolve().parents[1]


def environment() -> dict:
    """Where the measured code comes from and the versions it ran with (informational, not compared)."""
    from importlib.metadata import version

    root = repository_root()
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    packages = ["torch", "transformers", "peft", "accelerate", "datasets", "numpy", "scikit-learn", "soundfile"]
    return {"root": str(root), "commit": commit.strip(), "versions": {name: version(name) for name in packages}}


# ------------------------------------------------------------------------------------------------- clips
def make_clips(folder: Path) -> None:
    """Speak `SENTENCES` with espeak-ng, converted by sox to 16 kHz mono 16-bit WAV files."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, sentence in enumerate(SENTENCES):
        with tempfile.NamedTemporaryFile(suffix=".wav") as raw:
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", raw.name, sentence], check=True)
            wav = str(folder / f"clip{index}.wav")
            subprocess.run(["sox", raw.name, "-r", str(SAMPLING_RATE), "-c", "1", "-b", "16", wav], check=True)
    (folder / "sentences.txt").write_text("".join(sentence + "\n" for sentence in SENTENCES))


def read_clips(folder: Path) -> list[tuple[str, "object"]]:
    """The clips as (name, float32 array at 16 kHz); read with soundfile only, so no resampler is involved."""
    import soundfile

    paths = sorted(folder.glob("clip*.wav"), key=lambda path: int(path.stem[4:]))
    clips = []
    for path in paths:
        audio, rate = soundfile.read(path, dtype="float32")
        if rate != SAMPLING_RATE:
            raise ValueError(f"{path} is at {rate} Hz; the clips must be {SAMPLING_RATE} Hz.")
        clips.append((path.name, audio))
    return clips


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


# ----------------------------------------------------------------------------------------- shipped model
def shipped_generations(clips: list) -> dict:
    """Greedy answers of the shipped model (assembled as `voxlm demo` does) to `INSTRUCTION` about each clip."""
    import torch

    shipped = import_first("voxlm.train.offline.shipped", "voxlm.train.shipped")
    prompts = import_first("voxlm.train.core.prompts", "voxlm.train.data")
    evaluate = import_first("voxlm.train.core.evaluate", "voxlm.train.evaluate")
    model, processor = shipped.assemble()
    tokenizer = processor.tokenizer
    prompt = prompts.build_prompt(processor, INSTRUCTION)
    rows = []
    with torch.inference_mode():
        for name, audio in clips:
            inputs = processor(text=[prompt], audio=[audio], sampling_rate=SAMPLING_RATE)
            output = model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=MAX_NEW_TOKENS,
                pad_token_id=tokenizer.pad_token_id,
                output_scores=True,
                return_dict_in_generate=True,
            )
            new_tokens = output.sequences[0, inputs["input_ids"].shape[1] :].tolist()
            rows.append(
                {
                    "clip": name,
                    "audio_sha256": digest(audio.tobytes()),
                    "input_ids": inputs["input_ids"][0].tolist(),
                    "input_features_sum": float(inputs["input_features"].double().sum()),
                    "new_token_ids": new_tokens,
                    "text": tokenizer.decode(new_tokens, skip_special_tokens=True),
                    "step_max_logits": [float(scores[0].max()) for scores in output.scores],
                }
            )
        # The same clips through the evaluation helper the recipes and the demo use (left-padded batches of 4).
        examples = [{"audio": audio, "instruction": INSTRUCTION} for _, audio in clips]
        batched = evaluate.generate_answers(model, processor, examples, batch_size=4, max_new_tokens=MAX_NEW_TOKENS)
    return {
        "prompt": prompt,
        "adapter_sha256": digest((shipped.shipped_dir() / shipped.ADAPTER_FILE).read_bytes()),
        "clips": rows,
        "generate_answers_batch4": batched,
    }


# ---------------------------------------------------------------------------------------------- audio input
def audio_reading(work: Path) -> dict:
    """What the recipes' audio reader makes of each kind of data set cell: files at other rates, in stereo, as
    bytes, arrays in dicts and bare lists, each resampled to 16 kHz (digest, length, sum) with its duration."""
    import numpy as np
    import soundfile

    audio = import_first("voxlm.train.core.audio", "voxlm.train.data")
    rng = np.random.default_rng(0)
    times = np.arange(int(1.3 * 48000)) / 48000
    wave = (0.4 * np.sin(2 * np.pi * 220 * times) + 0.05 * rng.standard_normal(times.size)).astype(np.float32)
    stereo = np.stack([wave, 0.5 * wave[::-1]], axis=1)
    soundfile.write(work / "mono22050.wav", wave[::2][: int(1.3 * 22050)], 22050)
    soundfile.write(work / "stereo48000.wav", stereo, 48000, subtype="PCM_16")
    soundfile.write(work / "mono8000.flac", wave[::6], 8000)
    cells = {
        "wav_22050_path": str(work / "mono22050.wav"),
        "wav_48000_stereo_path": str(work / "stereo48000.wav"),
        "flac_8000_bytes": {"bytes": (work / "mono8000.flac").read_bytes(), "path": None},
        "array_44100_dict": {"array": wave[:44100].tolist(), "sampling_rate": 44100},
        "array_16000_list": wave[:16000].tolist(),
    }
    results = {}
    for name, cell in cells.items():
        clip = audio.read_audio(cell)
        results[name] = {
            "sha256": digest(np.ascontiguousarray(clip, dtype=np.float32).tobytes()),
            "length": int(clip.size),
            "sum": float(clip.astype(np.float64).sum()),
            "seconds": float(audio.audio_seconds(cell)),
        }
    return results


# ------------------------------------------------------------------------------------------------ training
@contextlib.contextmanager
def recorded_training() -> Iterator[list[dict]]:
    """Every `transformers.Trainer` created meanwhile appends one segment: its per-step training losses (what
    `training_step` returns) and the computation-dependent values it logs."""
    from transformers import Trainer

    segments: list[dict] = []
    original_step, original_log = Trainer.training_step, Trainer.log

    def segment(trainer) -> dict:
        if getattr(trainer, "_fingerprint_segment", None) is None:
            trainer._fingerprint_segment = {"trainer": type(trainer).__name__, "losses": [], "logs": []}
            segments.append(trainer._fingerprint_segment)
        return trainer._fingerprint_segment

    def training_step(self, *args, **kwargs):
        loss = original_step(self, *args, **kwargs)
        segment(self)["losses"].append(float(loss))
        return loss

    def log(self, logs, *args, **kwargs):
        kept = {key: float(value) for key, value in logs.items() if KEPT_LOG_KEYS.search(key)}
        if kept:
            segment(self)["logs"].append(kept)
        return original_log(self, logs, *args, **kwargs)

    Trainer.training_step, Trainer.log = training_step, log
    try:
        yield segments
    finally:
        Trainer.training_step, Trainer.log = original_step, original_log


def weights_digest(path: Path) -> str:
    """A digest of a safetensors file's tensors by name and value (independent of the file's header layout)."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    sha = hashlib.sha256()
    for name in sorted(tensors):
        sha.update(name.encode() + tensors[name].contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()[:16]


def sanitized(value, work: Path):
    """A saved record without wall times, and with the run's temporary folder written as `<work>`."""
    if isinstance(value, dict):
        return {key: sanitized(item, work) for key, item in value.items() if not TIMING_KEYS.search(str(key))}
    if isinstance(value, list):
        return [sanitized(item, work) for item in value]
    if isinstance(value, str):
        return value.replace(str(work), "<work>")
    return value


def curriculum_runs(work: Path) -> dict:
    """The test suite's three-stage recipe (adapter, LoRA ASR, multitask), logging every step; and a CTC warm-up
    stage followed by an adapter stage on the same data."""
    import yaml
    from curriculum_helpers import write_recipe
    from transformers import set_seed

    from voxlm.train import curriculum

    results = {}
    ctc = [
        {"name": "align", "objective": "ctc", "datasets": ["asr"], "eval_datasets": ["asr_dev"], "max_steps": 4},
        {"name": "adapter", "datasets": ["asr"], "max_steps": 3},
    ]
    for name, stages in (("curriculum", None), ("curriculum_ctc", ctc)):
        root = work / name
        training = {"learning_rate": 1e-2, "logging_steps": 1, "save_steps": 3, "eval_steps": 3}
        recipe = write_recipe(root, stages=stages, training=training)
        set_seed(0)
        with recorded_training() as segments:
            final = Path(curriculum.main(["--config", str(recipe)]))
        USED_MODULES["voxlm.train.curriculum.main"] = curriculum.main.__module__
        run_info = json.loads((final / "run_info.json").read_text())
        summary = final / "training_summary.json"
        results[name] = {
            "recipe": sanitized(yaml.safe_load(recipe.read_text()), work),
            "trainers": segments,
            "final_weights": weights_digest(final / "model.safetensors"),
            "stages": sanitized(run_info.get("stages"), work),
            "metrics": sanitized(run_info.get("metrics"), work),
            "summary": sanitized(json.loads(summary.read_text()), work) if summary.is_file() else None,
        }
    return results


def align_runs(work: Path) -> dict:
    """Continuations of a tiny LLM (BLSP step 1) and a few adapter steps with each objective (step 2)."""
    import datasets
    import numpy as np
    import soundfile
    from tiny import tiny_voxlm, tone
    from transformers import set_seed

    from voxlm.train import align

    start = work / "align-start"
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    model.save_pretrained(start)
    processor.save_pretrained(start)
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) for _ in range(16)]
    (work / "wav").mkdir(parents=True)
    paths = []
    for index in range(8):
        paths.append(str(work / "wav" / f"{index}.wav"))
        soundfile.write(paths[-1], tone(0.4 + 0.1 * (index % 4), seed=index), SAMPLING_RATE)
    manifest = work / "asr.jsonl"
    manifest.write_text("".join(json.dumps({"audio": path, "text": text}) + "\n" for path, text in zip(paths, texts)))
    results = {}
    USED_MODULES["voxlm.train.align.main"] = align.main.__module__

    set_seed(0)
    continuations = work / "continuations"
    options = {"data": manifest, "model": start, "output_dir": continuations, "template": "plain",
               "shard_size": 8, "batch_size": 4, "max_new_tokens": 8}  # fmt: skip
    align.main(["continuations", *[item for key, value in options.items() for item in (f"--{key}", str(value))]])
    rows = datasets.load_from_disk(str(continuations / "dataset"))
    results["continuations"] = {"transcript": list(rows["transcript"]), "continuation": list(rows["continuation"])}

    table = work / "table"
    datasets.Dataset.from_dict({"audio": paths, "transcript": texts[:8], "continuation": texts[8:]}).save_to_disk(
        str(table / "dataset")
    )
    for objective in ("blsp", "kd"):
        output = work / f"align-{objective}"
        set_seed(0)
        with recorded_training() as segments:
            align.main(
                ["train", "--data", str(table), "--model", str(start), "--output_dir", str(output),
                 "--objective", objective, "--max_steps", "4", "--per_device_train_batch_size", "4",
                 "--learning_rate", "1e-2", "--warmup_steps", "0", "--logging_steps", "1", "--seed", "0",
                 "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true"]
            )  # fmt: skip
        settings = json.loads((output / "align_settings.json").read_text())
        results[f"train_{objective}"] = {
            "trainers": segments,
            "final_weights": weights_digest(output / "model.safetensors"),
            "settings": sanitized(settings, work),
        }
    return results


def classify_runs(work: Path) -> dict:
    """The speech-token study on the test suite's synthetic corpus: the four conditions, one seed, with the Lasso
    selection, the adaptation of the new embedding rows and a LoRA fine-tune of a tiny causal LM."""
    import yaml
    from datasets import Dataset, DatasetDict
    from tiny_speechtok import save_tiny_lm, synthetic_corpus
    from transformers import set_seed

    from voxlm.train import classify

    vocabulary = [f"<|a0_{code}|>" for code in range(30)]
    signal = {0: ["<|a0_1|>", "<|a0_2|>"], 1: ["<|a0_28|>", "<|a0_29|>"]}
    model = save_tiny_lm("causal", str(work / "lm"))
    splits = {}
    for name, size, seed in (("train", 48, 0), ("test", 24, 1)):
        clips, labels, texts = synthetic_corpus(size, vocabulary, signal, length=10, seed=seed)
        splits[name] = Dataset.from_dict({"text": texts, "audio_tokens": clips, "label": labels})
    DatasetDict(splits).save_to_disk(str(work / "data"))
    config = {
        "model": model,
        "data": {"path": str(work / "data")},
        "output_dir": str(work / "runs"),
        "seeds": [0],
        "max_length": 48,
        "selection": {"C": 0.5},
        "adaptation": {"max_steps": 3, "batch_size": 8},
        "finetune": {"max_steps": 3, "batch_size": 8, "lora": {"r": 4, "alpha": 8}},
    }
    path = work / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    set_seed(0)
    with recorded_training() as segments:
        classify.main(["--config", str(path)])
    USED_MODULES["voxlm.train.classify.main"] = classify.main.__module__
    results = [json.loads(line) for line in (work / "runs" / "results.jsonl").read_text().splitlines()]
    return {"trainers": segments, "results": sanitized(results, work)}


def fingerprint(clips_folder: Path, sections: list[str]) -> dict:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(repository_root() / "tests"))  # the tiny models and data of the checkout measured
    record = {"environment": environment()}
    if "shipped" in sections:
        if not list(clips_folder.glob("clip*.wav")):
            make_clips(clips_folder)
        record["shipped"] = shipped_generations(read_clips(clips_folder))
    recipes = {"audio": audio_reading, "curriculum": curriculum_runs, "align": align_runs, "classify": classify_runs}
    for name, run in recipes.items():
        if name in sections:
            with tempfile.TemporaryDirectory(prefix=f"fingerprint-{name}-") as work:
                record[name] = run(Path(work).resolve())
    record["environment"]["modules"] = dict(USED_MODULES)
    return record


# ------------------------------------------------------------------------------------------------ compare
def differences(before, after, where: str = "") -> Iterator[tuple[str, str, str]]:
    """(path, kind, what) for every leaf of two fingerprints that differs: kind is `added` (a field only the second
    one has, e.g. a new metric or config default), `removed` or `changed`; floats count as equal within
    `FLOAT_TOLERANCE`."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            if key not in before:
                yield f"{where}/{key}", "added", f"only in after: {after[key]!r}"[:120]
            elif key not in after:
                yield f"{where}/{key}", "removed", "only in before"
            elif key != "trainer":  # a trainer's class name may change with the code; its numbers may not
                yield from differences(before[key], after[key], f"{where}/{key}")
    elif isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            yield where, "changed", f"length {len(before)} != {len(after)}"
        for index, (one, two) in enumerate(zip(before, after)):
            yield from differences(one, two, f"{where}[{index}]")
    elif isinstance(before, float) and isinstance(after, float):
        if not (math.isclose(before, after, rel_tol=0, abs_tol=FLOAT_TOLERANCE) or before == after):
            yield where, "changed", f"{before!r} != {after!r}"
    elif before != after:
        yield where, "changed", f"{before!r} != {after!r}"[:200]


def max_float_difference(before, after) -> float:
    """The largest absolute difference between corresponding floats (0.0 when all are equal)."""
    if isinstance(before, dict) and isinstance(after, dict):
        pairs = [(before[key], after[key]) for key in before if key in after]
    elif isinstance(before, list) and isinstance(after, list):
        pairs = list(zip(before, after))
    elif isinstance(before, float) and isinstance(after, float):
        return abs(before - after)
    else:
        return 0.0
    return max((max_float_difference(one, two) for one, two in pairs), default=0.0)


def compared_items(record: dict) -> dict[str, object]:
    """The rows of the comparison table: one per clip, per recipe run and per recorded part of a run."""
    items = {}
    shipped = record.get("shipped", {})
    for key in ("prompt", "adapter_sha256", "generate_answers_batch4"):
        if key in shipped:
            items[f"shipped/{key}"] = shipped[key]
    for row in shipped.get("clips", []):
        items[f"shipped/{row['clip']}"] = row
    for cell, value in record.get("audio", {}).items():
        items[f"audio/{cell}"] = value
    for section in ("curriculum", "align", "classify"):
        runs = record.get(section, {})
        if section == "classify":
            runs = {"study": runs}
        for run, parts in runs.items():
            for part, value in parts.items():
                items[f"{section}/{run}/{part}"] = value
    return items


def describe(value) -> str:
    """A short size of a compared item: its number of per-step losses, or its number of leaves."""
    if isinstance(value, list) and value and isinstance(value[0], dict) and "losses" in value[0]:
        return f"{len(value)} trainer(s), {sum(len(segment['losses']) for segment in value)} step losses"
    if isinstance(value, dict) and "new_token_ids" in value:
        return f"{len(value['new_token_ids'])} new tokens"
    if isinstance(value, (list, dict)):
        return f"{len(value)} entries"
    return "1 value"


def compare(before_path: Path, after_path: Path) -> int:
    """Print a Markdown table of every compared item, then every difference; 1 if a value changed or went
    missing (fields only the second fingerprint has are listed, not failed)."""
    before, after = json.loads(before_path.read_text()), json.loads(after_path.read_text())
    one, two = compared_items(before), compared_items(after)
    print(f"before: {before['environment']['commit']}  after: {after['environment']['commit']}")
    versions = before["environment"]["versions"], after["environment"]["versions"]
    if versions[0] != versions[1]:
        print(f"note: package versions differ: {versions[0]} vs {versions[1]}")
    print("\n| item | size | identical | max abs float difference |")
    print("|---|---|---|---|")
    failed, details = False, []
    for name in sorted(set(one) | set(two), key=lambda key: (key.split("/")[0], key)):
        if name not in one or name not in two:
            print(f"| {name} | | no: only in {'after' if name not in one else 'before'} | |")
            failed = True
            continue
        found = list(differences(one[name], two[name]))
        added = [path for path, kind, _ in found if kind == "added"]
        if len(added) < len(found):
            verdict = "**no**"
            failed = True
        else:
            verdict = f"yes; after adds {len(added)} field(s)" if added else "yes"
        details += [f"- `{name}{path}` ({kind}): {what}" for path, kind, what in found]
        difference = max_float_difference(one[name], two[name])
        print(f"| {name} | {describe(one[name])} | {verdict} | {difference:.3g} |")
    if details:
        print("\nDifferences:\n" + "\n".join(details))
    return int(failed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", nargs="?", type=Path, help="the fingerprint JSON to write")
    parser.add_argument("--clips", type=Path, default=Path("fingerprint-clips"), help="folder of clip*.wav")
    sections = ["shipped", "audio", "curriculum", "align", "classify"]
    parser.add_argument("--sections", nargs="+", choices=sections, default=sections, help="what to record")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="compare two fingerprints")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if args.output is None:
        parser.error("give the output JSON, or --compare BEFORE AFTER")
    record = fingerprint(args.clips.resolve(), args.sections)
    args.output.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
