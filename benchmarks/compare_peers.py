"""VoxLM against transformers' own speech LLMs (Qwen2-Audio, Voxtral, GraniteSpeech), side by side in one run.

Sections (all by default):
  train         training step (forward + backward + AdamW) on a batch of clips of each length, all weights
                trainable: audio seconds per wall second, peak extra resident memory, LLM audio positions
  generate      prefill time and decode tokens/s, for one clip and for a batch
  profile       where the time of one VoxLM training step goes (encoder / adapter / LLM), via torch.profiler
  continuation  BLSP continuation writing with a SmolLM2-135M-shaped LLM: rows/s batched vs one by one
  lasso         speech-token selection (`SpeechTokenSelector.fit`: TF-IDF, L1 logistic regression) time vs clips
  memcheck      the in-process peak-memory measurement against a fresh process's own high-water mark (VmHWM)

All models are measured in this one process, interleaved round by round. Every round records CPU seconds per
wall second; rounds below `--min-cpu-ratio` (other processes took the core) never enter a reported number and are
repeated while the time budget lasts (see `benchmarks/timing.py`). `--time-budget` bounds the whole run: on a
loaded machine sections get fewer rounds instead of running long. Results: a Markdown table on stdout and a JSON
file.

    python -m benchmarks.compare_peers            # full run, a few minutes on 2 cores
    python -m benchmarks.compare_peers --quick    # smoke test, seconds
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its thread pool (see docs/DESIGN.md)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from transformers.utils import logging  # noqa: E402

from voxlm.train.core.tables import format_cell, render_table  # noqa: E402

from . import continuation, lasso_selection, peers, profile_step  # noqa: E402
from .timing import Cell, RssProbe, measure, run_interleaved  # noqa: E402

logger = logging.get_logger("benchmarks.compare_peers")
SECTIONS = ("train", "generate", "profile", "continuation", "lasso", "memcheck")
RESULTS_DIR = Path(__file__).parent / "results"
TARGETS = {3.0: 7.0, 30.0: 2.0}  # clip seconds -> required speed-up over Qwen2-Audio at 6.25 positions/s
TARGET_PRESETS = ("voxlm-blsp", "voxlm-ultravox")  # the presets at Ultravox's 6.25 positions per second

FULL = {
    "size": "small",
    "seconds": [2.0, 3.0, 5.0, 10.0, 30.0],
    "batch_size": 8,
    "rounds": 3,
    "time_budget": 480.0,
    "gen_seconds": 5.0,
    "gen_batch": 8,
    "new_tokens": 16,
    "continuation_shape": "smollm2-135m",
    "continuation_rows": 8,
    "continuation_tokens": 64,
    "continuation_rounds": 1,
    "lasso_clips": [125, 250, 500, 1000],
    "sections": list(SECTIONS),
    "profile_seconds": [3.0, 30.0],
}
QUICK = {
    "size": "tiny",
    "seconds": [3.0, 30.0],
    "batch_size": 2,
    "rounds": 1,
    "time_budget": 0.0,
    "gen_seconds": 3.0,
    "gen_batch": 2,
    "new_tokens": 4,
    "continuation_shape": "tiny",
    "continuation_rows": 3,
    "continuation_tokens": 4,
    "continuation_rounds": 1,
    "lasso_clips": [30, 60],
    "sections": [section for section in SECTIONS if section != "memcheck"],  # memcheck starts two processes
    "profile_seconds": [3.0],
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare_peers", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny models, short clips, one round: a smoke test")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, help="default: all (--quick: all but memcheck)")
    parser.add_argument("--models", nargs="+", choices=peers.MODELS, default=list(peers.MODELS))
    parser.add_argument("--size", choices=sorted(peers.SIZES), help="shared model dimensions (see peers.SIZES)")
    parser.add_argument("--seconds", nargs="+", type=float, help="clip lengths of the training rows")
    parser.add_argument("--batch-size", type=int, help="clips per training batch")
    parser.add_argument("--rounds", type=int, help="clean rounds wanted per measurement")
    parser.add_argument(
        "--time-budget",
        type=float,
        help="seconds for the whole run (split between sections); 0 = one pass of everything, no repeats",
    )
    parser.add_argument("--min-cpu-ratio", type=float, default=0.9, help="CPU/wall below this marks a round contended")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 makes contention measurable)")
    parser.add_argument("--output", type=Path, help="JSON path (default benchmarks/results/compare_peers[_quick].json)")
    parser.add_argument(
        "--full-logits",
        action="store_true",
        help="VoxLM computes the LM head at every position in training, as the peers do (for comparison)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, metavar="JSON", help="print the tables of a saved run and exit")
    parser.add_argument("--memory-child", nargs=2, metavar=("MODEL", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.output is None:
        args.output = RESULTS_DIR / ("compare_peers_quick.json" if args.quick else "compare_peers.json")
    return args


def machine_info(threads: int) -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "load_average_start": os.getloadavg(),
    }


class Progress:
    """A tqdm bar over measured rounds (the total grows when contended rounds are retried)."""

    def __init__(self, description: str, total: int):
        self.bar = tqdm(total=total, desc=description, leave=False, dynamic_ncols=True)

    def __call__(self, message: str) -> None:
        if self.bar.n >= self.bar.total:
            self.bar.total += 1
        self.bar.set_postfix_str(message[-70:])
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


# Share of `--time-budget` for each section (the selected sections' shares are renormalised).
BUDGET_SHARE = {"train": 0.55, "generate": 0.1, "profile": 0.03, "continuation": 0.17, "lasso": 0.08, "memcheck": 0.07}


def section_rounds(args, section: str) -> int:
    """Continuation writing is long (eight rows one by one): it has its own, smaller number of rounds."""
    return min(args.rounds, args.continuation_rounds) if section == "continuation" else args.rounds


def section_deadlines(args, start: float) -> dict[str, float]:
    """Cumulative deadlines: a section that finishes early leaves its time to the next ones."""
    total = sum(BUDGET_SHARE[section] for section in args.sections)
    deadlines, elapsed = {}, 0.0
    for section in args.sections:
        elapsed += args.time_budget * BUDGET_SHARE[section] / total
        deadlines[section] = start + elapsed
    return deadlines


def measure_cells(cells: list[Cell], args, probe: RssProbe | None, section: str) -> None:
    rounds = section_rounds(args, section)
    progress = Progress(section, len(cells) * rounds)
    try:
        run_interleaved(cells, rounds, args.min_cpu_ratio, args.deadlines[section], probe, args.seed, progress)
    finally:
        progress.close()


# ------------------------------------------------------------------------------------------------ train
def training_step(model, batch: dict, optimizer) -> None:
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def build_models(args, size) -> dict:
    models = {}
    for name in tqdm(args.models, desc="building models", leave=False):
        model = peers.build_model(name, size, seed=args.seed)
        if args.full_logits and name.startswith("voxlm-"):
            model.logits_at_labels_only = False
        models[name] = {"model": model, "params": peers.parameter_counts(model)}
    return models


def train_section(args, size, models: dict, bank, probe) -> list[dict]:
    cells, info = [], {}
    for name, entry in models.items():
        model = entry["model"].train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
        for seconds in args.seconds:
            batch = peers.training_batch(name, model, size, bank, seconds, args.batch_size)
            cells.append(Cell((name, seconds), _bind(training_step, model, batch, optimizer)))
            info[(name, seconds)] = {
                "positions": peers.audio_positions(name, model, seconds),
                "sequence_length": batch["input_ids"].shape[1],
            }
        # One warm-up step per model (first-call costs, optimizer state), on the shortest clips.
        training_step(model, peers.training_batch(name, model, size, bank, min(args.seconds), 2), optimizer)
    measure_cells(cells, args, probe, "train")
    rows = []
    for cell in cells:
        name, seconds = cell.key
        stats = cell.summary(args.min_cpu_ratio)
        audio = args.batch_size * seconds
        rows.append(
            {
                "model": name,
                "seconds": seconds,
                **info[cell.key],
                "positions_per_second": info[cell.key]["positions"] / seconds,
                **stats,
                "audio_s_per_wall_s": audio / stats["wall_s"],
                "audio_s_per_cpu_s": audio / stats["cpu_s"],
            }
        )
    return rows


def _bind(function, *args):
    def work():
        return function(*args)

    return work


def acceptance(rows: list[dict]) -> list[dict]:
    """VoxLM's speed-up and memory against Qwen2-Audio at the target clip lengths, for every VoxLM preset."""
    by_key = {(row["model"], row["seconds"]): row for row in rows}
    checks = []
    for seconds, target in TARGETS.items():
        reference = by_key.get(("qwen2-audio", seconds))
        if reference is None:
            continue
        for preset in (name for name in peers.MODELS if name.startswith("voxlm-")):
            row = by_key.get((preset, seconds))
            if row is None:
                continue
            speedup = reference["wall_s"] / row["wall_s"]
            memory = row["peak_mib"] / reference["peak_mib"] if row["peak_mib"] and reference["peak_mib"] else None
            applies = preset in TARGET_PRESETS
            checks.append(
                {
                    "preset": preset,
                    "seconds": seconds,
                    "positions_per_second": row["positions_per_second"],
                    "speedup_wall": speedup,
                    "speedup_cpu": reference["cpu_s"] / row["cpu_s"],
                    "target": target if applies else None,
                    "speed_ok": speedup >= target if applies else None,
                    "memory_ratio": memory,
                    "memory_ok": memory is not None and memory <= 1.0,
                    "contended": row["contended"] or reference["contended"],
                }
            )
    return checks


# --------------------------------------------------------------------------------------------- generate
def _generate(model, batch: dict, new_tokens: int):
    return continuation.generate_exactly(model, batch, new_tokens, pad_token_id=0)


def generation_section(args, size, models: dict, bank) -> list[dict]:
    cells = []
    batch_sizes = sorted({1, args.gen_batch})
    for name, entry in models.items():
        model = entry["model"].eval()
        for batch_size in batch_sizes:
            batch = peers.generation_batch(name, model, size, bank, args.gen_seconds, batch_size)
            _generate(model, batch, 2)  # warm-up
            for new_tokens in (1, args.new_tokens):
                cells.append(Cell((name, batch_size, new_tokens), _bind(_generate, model, batch, new_tokens)))
    measure_cells(cells, args, None, "generate")
    stats = {cell.key: cell.summary(args.min_cpu_ratio) for cell in cells}
    rows = []
    for name in models:
        for batch_size in batch_sizes:
            prefill, full = stats[(name, batch_size, 1)], stats[(name, batch_size, args.new_tokens)]
            decode_time = full["wall_s"] - prefill["wall_s"]
            rows.append(
                {
                    "model": name,
                    "batch_size": batch_size,
                    "seconds": args.gen_seconds,
                    "prompt_length": peers.prompt_length(name, models[name]["model"], args.gen_seconds),
                    "prefill_s": prefill["wall_s"],
                    "decode_tokens_per_s": batch_size * (args.new_tokens - 1) / decode_time
                    if decode_time > 0
                    else None,
                    "new_tokens": args.new_tokens,
                    "contended": prefill["contended"] or full["contended"],
                    "prefill_rounds": prefill,
                    "full_rounds": full,
                }
            )
    return rows


# ---------------------------------------------------------------------------------------------- profile
def profile_section(args, size, bank) -> list[dict]:
    results = []
    for preset in ("voxlm-blsp",):
        model = peers.build_model(preset, size, seed=args.seed).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
        for seconds in args.profile_seconds:
            batch = peers.training_batch(preset, model, size, bank, seconds, args.batch_size)
            summary = profile_step.profile_training_step(model, batch, optimizer)
            summary["shares"] = profile_step.encoder_adapter_llm_shares(summary)
            results.append({"model": preset, "seconds": seconds, **summary})
            model = peers.build_model(preset, size, seed=args.seed).train()  # fresh, un-instrumented instance
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    return results


# ----------------------------------------------------------------------------------------- continuation
def continuation_section(args) -> dict:
    shape = continuation.SMOLLM2_135M if args.continuation_shape == "smollm2-135m" else continuation.TINY_LLM
    model = continuation.build_llm(shape, seed=args.seed)
    rows = continuation.prompts(args.continuation_rows, shape["vocab_size"], seed=args.seed)
    bench = continuation.ContinuationBenchmark(model, rows, args.continuation_tokens)
    bench.warm_up()
    cells = bench.cells()
    measure_cells(cells, args, None, "continuation")
    out = {"llm_shape": args.continuation_shape, "rows": len(rows), "new_tokens": args.continuation_tokens}
    for cell in cells:
        stats = cell.summary(args.min_cpu_ratio)
        out[cell.key[1]] = {**stats, "rows_per_s": len(rows) / stats["wall_s"]}
    out["identical_fraction"] = bench.same_fraction()
    return out


# ------------------------------------------------------------------------------------------------ lasso
def lasso_section(args) -> list[dict]:
    bench = lasso_selection.SelectionBenchmark(args.lasso_clips)
    bench.warm_up()
    cells = bench.cells()
    measure_cells(cells, args, None, "lasso")
    rows = []
    for cell in cells:
        count = cell.key[1]
        rows.append({"clips": count, **bench.summary(count), **cell.summary(args.min_cpu_ratio)})
    return rows


# --------------------------------------------------------------------------------------------- memcheck
MEMCHECK_MODELS = ("qwen2-audio", "voxlm-blsp")


def first_step_peak(args, name: str, seconds: float, probe: RssProbe | None) -> float | None:
    """Peak extra resident MiB of a model's first training step (optimizer state included).

    With a probe: the in-process measurement of the `train` section (high-water mark reset before the step).
    Without: the fresh process's own high-water mark `VmHWM`, never reset, minus the resident size before the
    step. (Not `ru_maxrss`: a child started with vfork + exec inherits its parent's peak into `ru_maxrss`.)
    """
    size = peers.SIZES[args.size]
    model = peers.build_model(name, size, seed=args.seed).train()
    batch = peers.training_batch(name, model, size, peers.FeatureBank(size.num_mel_bins), seconds, args.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    work = _bind(training_step, model, batch, optimizer)
    if probe is not None:
        return measure(work, probe).peak_mib
    before, high_water = RssProbe.resident_mib(), RssProbe.high_water_mib()
    work()
    if RssProbe.high_water_mib() <= high_water:
        return None  # the step stayed below an earlier high-water mark (imports, model building): unmeasurable
    return RssProbe.high_water_mib() - before


def memcheck_section(args, probe: RssProbe) -> list[dict]:
    seconds = sorted(args.seconds)[len(args.seconds) // 2]
    rows = []
    for name in MEMCHECK_MODELS:
        command = [
            sys.executable,
            "-m",
            "benchmarks.compare_peers",
            "--memory-child",
            name,
            str(seconds),
            "--size",
            args.size,
            "--batch-size",
            str(args.batch_size),
            "--threads",
            str(args.threads),
        ]
        done = subprocess.run(command, cwd=Path(__file__).parents[1], capture_output=True, text=True, check=True)
        fresh = json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]
        in_process = first_step_peak(args, name, seconds, probe) if probe.available else None
        rows.append({"model": name, "seconds": seconds, "in_process_mib": in_process, "fresh_process_mib": fresh})
    return rows


# ------------------------------------------------------------------------------------------------ report
def _table(title: str | None, columns: list[tuple[str, Callable[[dict], object]]], items: list[dict]) -> str:
    """A Markdown table (under `title`, if any): one row per item, one `(header, cell of an item)` per column."""
    rows = [[cell(item) for _, cell in columns] for item in items]
    table = render_table([header for header, _ in columns], rows, markdown=True, float_format=".2f")
    return f"{title}\n\n{table}" if title else table


def _get(key: str) -> Callable[[dict], object]:
    return lambda item: item.get(key)


def _rounds(item: dict) -> str:
    """Clean rounds of all rounds, flagged: `*` contended rounds were dropped; `!` no clean round (the value is
    contended)."""
    flag = "!" if item.get("contended") else "*" if item.get("clean_rounds", 0) < item.get("rounds", 0) else ""
    return f"{item['clean_rounds']}/{item['rounds']}{flag}"


def report(results: dict) -> str:
    machine = results["machine"]
    parts = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['torch_threads']} torch thread(s); torch "
        f"{machine['torch']}, transformers {machine['transformers']}. Size `{results['size']['name']}`: "
        f"{_size_line(results['size'])}."
    ]
    if "params" in results:
        params = [{"model": name, **{key: n / 1e6 for key, n in p.items()}} for name, p in results["params"].items()]
        columns = [("model", _get("model")), ("params (M)", _get("total")), ("audio side (M)", _get("audio"))]
        parts.append(_table(None, [*columns, ("LLM (M)", _get("llm"))], params))
    if "train" in results:
        parts.append(_train_table(results))
    if "acceptance" in results:
        parts.append(_table("VoxLM against Qwen2-Audio", ACCEPTANCE_COLUMNS, results["acceptance"]))
    if "generate" in results:
        seconds = results["generate"][0]["seconds"] if results["generate"] else "-"
        parts.append(_table(f"Generation ({seconds} s clips, greedy)", GENERATION_COLUMNS, results["generate"]))
    if "profile" in results:
        parts += [_profile_table(result) for result in results["profile"]]
    if "continuation" in results:
        parts.append(_continuation_table(results["continuation"]))
    if "lasso" in results:
        parts.append(_lasso_table(results["lasso"]))
    if "memcheck" in results:
        title = "Peak-memory check (first training step, optimizer state included)"
        parts.append(_table(title, MEMCHECK_COLUMNS, results["memcheck"]))
    if "contention" in results:
        parts.append(_contention_line(results))
    parts.append(
        "Flags: `*` contended rounds were dropped (and repeated); `!` no uncontended round within the time budget, "
        "the value comes from contended rounds. CPU s: median process CPU seconds (hardly affected by contention)."
    )
    return "\n\n".join(parts)


def contention_summary(results: dict) -> dict:
    """Per section: measured rounds, how many were clean, and the median CPU seconds per wall second."""
    summary = {}
    for section in ("train", "generate", "continuation", "lasso"):
        if section not in results:
            continue
        entries = results[section]
        if section == "continuation":
            entries = [results[section][mode] for mode in ("batched", "one by one")]
        elif section == "generate":
            entries = [row[key] for row in entries for key in ("prefill_rounds", "full_rounds")]
        ratios = [ratio for entry in entries for ratio in entry["cpu_ratios"]]
        clean = sum(ratio >= results["settings"]["min_cpu_ratio"] for ratio in ratios)
        summary[section] = {"rounds": len(ratios), "clean": clean, "median_cpu_ratio": statistics.median(ratios)}
    return summary


def _contention_line(results: dict) -> str:
    parts = [
        f"{name} {item['clean']}/{item['rounds']} clean (median CPU/wall {item['median_cpu_ratio']:.2f})"
        for name, item in results["contention"].items()
    ]
    load = results["machine"]
    return (
        f"Rounds: {'; '.join(parts)}. Load average {load['load_average_start'][0]:.1f} at the start, "
        f"{load['load_average_end'][0]:.1f} at the end."
    )


def _size_line(size: dict) -> str:
    return (
        f"encoder {size['encoder_layers']} layers x {size['encoder_width']}, LLM {size['llm_layers']} layers x "
        f"{size['llm_width']} (ffn {size['llm_ffn']}), vocabulary {size['vocab_size']}"
    )


def _train_table(results: dict) -> str:
    columns = [
        ("model", _get("model")),
        ("clip s", _get("seconds")),
        ("LLM audio positions", _get("positions")),
        ("positions / s", _get("positions_per_second")),
        ("sequence", _get("sequence_length")),
        (f"step s (batch {results['settings']['batch_size']})", _get("wall_s")),
        ("CPU s", _get("cpu_s")),
        ("audio s / wall s", _get("audio_s_per_wall_s")),
        ("peak MiB", _get("peak_mib")),
        ("clean rounds", _rounds),
    ]
    rows = sorted(results["train"], key=lambda r: (r["seconds"], peers.MODELS.index(r["model"])))
    return _table("Training step (forward + backward + AdamW, all weights trainable)", columns, rows)


ACCEPTANCE_COLUMNS = [
    ("VoxLM preset", _get("preset")),
    ("clip s", _get("seconds")),
    ("positions / s", _get("positions_per_second")),
    ("speed-up (wall)", _get("speedup_wall")),
    ("speed-up (CPU)", _get("speedup_cpu")),
    ("target", lambda check: f"{check['target']:.0f}x" if check["target"] else "(reported)"),
    ("met", lambda check: {True: "yes", False: "NO", None: "-"}[check["speed_ok"]]),
    ("memory vs Qwen2-Audio", _get("memory_ratio")),
    ("memory <= Qwen2-Audio", lambda check: "yes" if check["memory_ok"] else "NO"),
]


def _decode_rate(row: dict, key: str) -> float | None:
    """New tokens after the first, per second of the difference between the full and the prefill-only run."""
    elapsed = row["full_rounds"][key] - row["prefill_rounds"][key]
    return row["batch_size"] * (row["new_tokens"] - 1) / elapsed if elapsed > 0 else None


GENERATION_COLUMNS = [
    ("model", _get("model")),
    ("batch", _get("batch_size")),
    ("prompt positions", _get("prompt_length")),
    ("prefill s", _get("prefill_s")),
    ("prefill CPU s", lambda row: row["prefill_rounds"]["cpu_s"]),
    ("decode tokens / s", _get("decode_tokens_per_s")),
    ("decode tokens / CPU s", lambda row: _decode_rate(row, "cpu_s")),
    ("flag", lambda row: "!" if row["contended"] else ""),
]
MEMCHECK_COLUMNS = [
    ("model", _get("model")),
    ("clip s", _get("seconds")),
    ("in this process (reset high-water mark) MiB", _get("in_process_mib")),
    ("fresh process (VmHWM) MiB", _get("fresh_process_mib")),
]


def _profile_table(result: dict) -> str:
    parts = [{"part": name, **part, "percent": 100 * part["share"]} for name, part in result["parts"].items()]
    columns = [("part", _get("part")), ("forward ms", _get("forward_ms")), ("backward ms", _get("backward_ms"))]
    columns += [("total ms", _get("total_ms")), ("%", _get("percent"))]
    shares = ", ".join(f"{name} {100 * share:.0f}%" for name, share in result["shares"].items())
    ratios = ", ".join(f"{ratio:.2f}" for ratio in result.get("cpu_ratios", []))
    title = (
        f"Profile of one {result['model']} training step, {result['seconds']} s clips ({shares}; median of "
        f"{len(result.get('cpu_ratios', [])) or 1} profiled steps, CPU/wall {ratios})"
    )
    top = ", ".join(f"{op['op']} {op['self_ms']:.0f} ms" for op in result["top_ops"])
    return f"{_table(title, columns, parts)}\n\nTop operators (self CPU): {top}"


def _continuation_table(result: dict) -> str:
    modes = [{"mode": mode, **result[mode], "rows_per_cpu_s": result["rows"] / result[mode]["cpu_s"]}
             for mode in ("batched", "one by one")]  # fmt: skip
    columns = [("mode", _get("mode")), ("wall s", _get("wall_s")), ("rows / s", _get("rows_per_s"))]
    columns += [("rows / CPU s", _get("rows_per_cpu_s")), ("clean rounds", _rounds)]
    title = (
        f"Continuation writing ({result['llm_shape']} LLM, {result['rows']} rows, {result['new_tokens']} new tokens, "
        f"greedy, left padding; identical batched vs alone: {format_cell(result['identical_fraction'], '.2f')})"
    )
    return _table(title, columns, modes)


def _lasso_table(rows: list[dict]) -> str:
    columns = [("clips", _get("clips"))]
    if rows and "C" not in rows[0]:  # runs saved before the section timed SpeechTokenSelector
        columns += [("token types", _get("vocabulary")), ("fit s", _get("wall_s")), ("fit CPU s", _get("cpu_s"))]
        columns += [("saga iterations", _get("saga_iterations")), ("non-zero tokens", _get("nonzero_weights"))]
        columns += [("selected", _get("selected_tokens")), ("clean rounds", _rounds)]
        return _table("Speech-token selection (scikit-learn pipeline built in the benchmark)", columns, rows)
    columns += [("token types", _get("token_types")), ("fit s", _get("wall_s")), ("fit CPU s", _get("cpu_s"))]
    columns += [("non-zero tokens", _get("nonzero_weights")), ("selected", _get("selected_tokens"))]
    columns += [("label tokens selected", _get("label_tokens_recovered")), ("clean rounds", _rounds)]
    settings = f", C = {rows[0]['C']:g}, max_iter = {rows[0]['max_iter']}" if rows else ""
    return _table(f"Speech-token selection (`SpeechTokenSelector.fit`{settings})", columns, rows)


# -------------------------------------------------------------------------------------------------- main
def run(args) -> dict:
    torch.set_num_threads(args.threads)
    size = peers.SIZES[args.size]
    settings = {key: getattr(args, key) for key in [*FULL, "min_cpu_ratio", "threads", "quick", "full_logits"]}
    results = {"machine": machine_info(args.threads), "size": peers.size_description(size), "settings": settings}
    started = time.perf_counter()
    args.deadlines = section_deadlines(args, started)
    bank = peers.FeatureBank(size.num_mel_bins)
    probe = RssProbe()
    if not probe.available:
        logger.warning("Peak memory is not measured: /proc/self/clear_refs is not writable on this system.")
    models = build_models(args, size) if {"train", "generate"} & set(args.sections) else {}
    if models:
        results["params"] = {name: entry["params"] for name, entry in models.items()}
    timings = {}
    for section in args.sections:
        section_start = time.perf_counter()
        if section == "train":
            results["train"] = train_section(args, size, models, bank, probe)
            results["acceptance"] = acceptance(results["train"])
        elif section == "generate":
            results["generate"] = generation_section(args, size, models, bank)
        elif section == "profile":
            results["profile"] = profile_section(args, size, bank)
        elif section == "continuation":
            results["continuation"] = continuation_section(args)
        elif section == "lasso":
            results["lasso"] = lasso_section(args)
        elif section == "memcheck":
            results["memcheck"] = memcheck_section(args, probe)
        timings[section] = time.perf_counter() - section_start
    results["machine"]["load_average_end"] = os.getloadavg()
    results["contention"] = contention_summary(results)
    results["section_seconds"] = timings
    results["total_seconds"] = time.perf_counter() - started
    return results


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.report:
        results = json.loads(args.report.read_text())
        results.setdefault("contention", contention_summary(results))
        print(report(results))
        return results
    if args.memory_child:
        torch.set_num_threads(args.threads)
        name, seconds = args.memory_child[0], float(args.memory_child[1])
        print(json.dumps({"peak_mib": first_step_peak(args, name, seconds, probe=None)}))
        return {}
    logging.set_verbosity_error()  # random-weight models make generate() chatty
    warnings.filterwarnings("ignore", category=UserWarning)
    results = run(args)
    text = report(results)
    print(text)
    sections = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in results["section_seconds"].items())
    print(f"\nTotal {results['total_seconds']:.0f} s ({sections})")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(results, handle, indent=1, default=_json_default)
    print(f"Wrote {args.output}")
    return results


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"Cannot serialise {type(value).__name__}")


if __name__ == "__main__":
    main()
