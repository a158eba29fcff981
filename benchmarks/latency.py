"""Answering latency on a CPU: the shipped VoxLM model (fp32, bf16, int8, int4) next to the cascade.

    python -m benchmarks.latency                              # both sections -> benchmarks/results/latency.json
    python -m benchmarks.latency --sections latency           # timings only: run on an otherwise idle machine
    python -m benchmarks.latency --sections quality           # quality only (needs no quiet machine)
    python -m benchmarks.latency --quick                      # smoke test: 2 s clips, fp32 and int4, 2 clips/set
    python -m benchmarks.latency --report benchmarks/results/latency.json

`latency`: spoken prompts of 2, 5, 10 and 30 s (held-out sentences in held-out espeak-ng voices, joined and cut to
length) through each VoxLM variant and through the cascade (Whisper tiny.en's transcript -> SmolLM2, the same
request as text). From the waveform: time to the first new token, and to a 32-token answer (exactly 32 new tokens,
`min_new_tokens` = `max_new_tokens`); decode ms/token = (answer - first) / 31. Every model is loaded once; every
pass visits all cells in a fresh random order (`benchmarks.timing`); a round during which other processes kept more
than `--max-other-cores` cores busy is contended and never enters a reported median. Peak memory: the weights'
bytes, and the peak extra resident memory of a 32-token answer (`RssProbe`). VoxLM's `generate` keeps the cache of
the prompt's text before the audio (`reuse_prompt_prefix`), so every timed VoxLM call after the warm-up prefills only
the audio and what follows it, as every turn after the first of a session does. Run this section on an otherwise idle
machine: the contention check marks contended rounds, it cannot make them clean.

`quality`: on the same evaluation sets as `voxlm demo` (held-out sentences in held-out voices, WordNet sentences in
piper's held-out voice, real recordings, template and open spoken questions; `--per-set` clips each), repeat-WER and
spoken-QA accuracy of each variant and of the cascade, and each
variant's difference from fp32 on the same clips with a paired-bootstrap 95% interval: a difference whose interval
contains 0 is within noise.

The model is the shipped checkpoint assembled fresh at every run (`voxlm.train.offline.shipped.hub_folder`), loaded
the way a Hub user loads it (`AutoModel.from_pretrained(folder, trust_remote_code=True, ...)`), so a retrained
checkpoint is measured by re-running the same command; `--model` measures another VoxLM folder.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP: see voxlm.train.cli

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.timing import Cell, RssProbe, run_interleaved  # noqa: E402

SAMPLING_RATE = 16000
ANSWER_TOKENS = 32
# int4 without one of its CPU speed-ups, to measure each one's gain (timed on the bf16 clip lengths, not scored):
# its q/k/v and gate/up projections multiplied one by one, or the prompt prefilled by the int4 kernel.
INT4_ABLATIONS = {
    "int4-separate": {"fuse_projections": False},
    "int4-int4prefill": {"bf16_prefill": False},
}
VARIANTS = ("fp32", "bf16", "int8", "int4", *INT4_ABLATIONS)
# Variants timed only on `--bf16-seconds` clips and scored only on request.
SHORT_VARIANTS = ("bf16", *INT4_ABLATIONS)
CASCADE = "cascade"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latency.json"
# The request of the timed answers; the cascade gets the same one with the transcript in the text.
INSTRUCTION = "Repeat exactly what was said."
# The demo's evaluation sets (`voxlm.train.offline.demo.SETS`) and the requests scored on them: name -> (set, task).
SETS = {
    "templates": "eval_templates",
    "heldout_engine": "eval_heldout_engine",
    "real": "eval_real",
    "open_questions": "eval_open_questions",
    "template_questions": "eval_template_questions",
}
QUALITY_REQUESTS = {
    "repeat_templates": ("templates", "repeat"),
    "repeat_heldout_engine": ("heldout_engine", "repeat"),
    "repeat_real": ("real", "repeat"),
    "answer_templates": ("template_questions", "answer"),
    "answer_open": ("open_questions", "answer"),
}
QUALITY_NAMES = {
    "repeat_templates": "repeat-WER held-out voices",
    "repeat_heldout_engine": "repeat-WER held-out engine",
    "repeat_real": "repeat-WER real",
    "answer_templates": "QA accuracy template questions",
    "answer_open": "QA accuracy open questions",
}


def say(message: str) -> None:
    print(message, flush=True)


# ------------------------------------------------------------------------------------------------------ systems
class VoxLMSystem:
    """A VoxLM folder loaded with a `--quantize` preset: one waveform -> generated tokens."""

    def __init__(self, folder: Path, variant: str):
        from voxlm.train.core.inference import load_for_inference, quantization_kwargs
        from voxlm.train.core.prompts import build_prompt

        self.name = f"voxlm-{variant}"
        if variant in INT4_ABLATIONS:
            config = {**quantization_kwargs("int4")["quantization_config"], **INT4_ABLATIONS[variant]}
            self.model, self.processor = load_for_inference(folder, quantization_config=config)
        else:
            self.model, self.processor = load_for_inference(folder, quantize=variant)
        self.prompt = build_prompt(self.processor, INSTRUCTION, "chat", None)

    def generate(self, clips: list[np.ndarray], new_tokens: int) -> torch.Tensor:
        inputs = self.processor(text=[self.prompt] * len(clips), audio=clips, sampling_rate=SAMPLING_RATE,
                                padding_side="left")  # fmt: skip
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                pad_token_id=self.processor.tokenizer.pad_token_id,
            )  # fmt: skip
        return output[:, inputs["input_ids"].shape[1] :]


class CascadeSystem:
    """Whisper tiny.en transcribes, SmolLM2 answers the same request given the transcript as text."""

    name = CASCADE

    def __init__(self):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from voxlm.train.offline.assets import smollm2_dir
        from voxlm.train.offline.demo import TEXT_PROMPTS
        from voxlm.train.offline.speech import _whisper_tiny_en

        self.whisper, self.whisper_processor = _whisper_tiny_en()
        self.model = AutoModelForCausalLM.from_pretrained(smollm2_dir()).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
        self.template = TEXT_PROMPTS["repeat"]

    def generate(self, clips: list[np.ndarray], new_tokens: int) -> torch.Tensor:
        from voxlm.train.offline.speech import transcribe

        transcripts = transcribe(clips, model=self.whisper, processor=self.whisper_processor)
        prompts = [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": self.template.format(transcript=text)}],
                tokenize=False, add_generation_prompt=True,
            )
            for text in transcripts
        ]  # fmt: skip
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
            )  # fmt: skip
        return output[:, inputs["input_ids"].shape[1] :]


def _kernel_copies(value) -> list[torch.Tensor]:
    """The tensors of a quantized layer's kernel form (`_packed`: packed int4 planes, the bf16 prefill copy)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [tensor for item in value for tensor in _kernel_copies(item)]
    return (
        [tensor for item in vars(value).values() for tensor in _kernel_copies(item)] if hasattr(value, "packed") else []
    )


def weights_mib(*models: torch.nn.Module) -> float:
    """Bytes of every parameter and buffer (quantized weights at their stored size) and of the quantized layers'
    kernel copies made on first use (fbgemm's packed int8 weights are opaque and not counted), in MiB."""
    tensors = {id(t): t for model in models for t in (*model.parameters(), *model.buffers())}
    for model in models:
        for module in model.modules():
            for holder in (module, getattr(module, "shared", None)):
                for tensor in _kernel_copies(getattr(holder, "_packed", None)):
                    tensors[id(tensor)] = tensor
    return sum(t.numel() * t.element_size() for t in tensors.values()) / 2**20


def system_weights_mib(system) -> float:
    return weights_mib(system.model, system.whisper) if system.name == CASCADE else weights_mib(system.model)


# --------------------------------------------------------------------------------------------------------- data
def evaluation_data(workdir: Path, per_set: int) -> dict:
    """The demo's evaluation sets (built once in `workdir`, reused when they hold `per_set` clips)."""
    from voxlm.train.offline.demo import build_eval_data, load_eval_data

    folder = workdir / f"eval-data-{per_set}"
    if not (folder / SETS["templates"]).is_dir():  # the build resumes set by set; piper's sets need piper
        say(f"building the evaluation sets in {folder} (espeak-ng)")
        build_eval_data(folder, per_set)
    return load_eval_data(folder)


def spoken_prompt(clips: list[np.ndarray], seconds: float) -> np.ndarray:
    """Held-out sentences joined with 0.3 s pauses, repeated as needed and cut to exactly `seconds`."""
    pause = np.zeros(int(0.3 * SAMPLING_RATE), dtype=np.float32)
    pieces, total, index = [], 0, 0
    while total < seconds * SAMPLING_RATE:
        piece = np.concatenate([np.asarray(clips[index % len(clips)], dtype=np.float32), pause])
        pieces.append(piece)
        total += piece.size
        index += 1
    return np.concatenate(pieces)[: int(seconds * SAMPLING_RATE)]


# ------------------------------------------------------------------------------------------------------ latency
def latency_section(args, systems: dict, clips: list[np.ndarray]) -> list[dict]:
    """Time to the first token and to a 32-token answer, per system and clip length, interleaved."""
    prompts = {seconds: spoken_prompt(clips, seconds) for seconds in args.seconds}
    cells = []
    for name, system in systems.items():
        lengths = args.bf16_seconds if name.removeprefix("voxlm-") in SHORT_VARIANTS else args.seconds
        for seconds in lengths:
            for kind, tokens in (("first", 1), ("answer", ANSWER_TOKENS)):
                cells.append(
                    Cell((name, seconds, kind), lambda s=system, c=prompts[seconds], n=tokens: s.generate([c], n))
                )
    if args.extras:
        fastest = systems.get("voxlm-int4") or next(iter(systems.values()))
        five = spoken_prompt(clips, 5.0)
        batch = [spoken_prompt(clips[i:] + clips[:i], 5.0) for i in range(args.batch_size)]

        def one_thread(system=fastest, clip=five):
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                system.generate([clip], ANSWER_TOKENS)
            finally:
                torch.set_num_threads(threads)

        cells.append(Cell((fastest.name, 5.0, "answer, 1 thread"), one_thread))
        cells.append(Cell((fastest.name, 5.0, f"answer, batch {args.batch_size}"),
                          lambda s=fastest: s.generate(batch, ANSWER_TOKENS)))  # fmt: skip
    for system in systems.values():  # warm-up: first calls pack the quantized weights and load lazy modules
        system.generate([prompts[min(args.seconds)]], 2)
    probe = RssProbe()
    deadline = time.perf_counter() + args.time_budget
    run_interleaved(cells, args.rounds, args.min_cpu_ratio, deadline, probe, args.seed,
                    progress=say if args.verbose else None, max_other_cores=args.max_other_cores)  # fmt: skip
    stats = {cell.key: cell.summary(args.min_cpu_ratio, args.max_other_cores) for cell in cells}
    rows = []
    for (name, seconds, kind), stat in stats.items():
        if kind != "answer":
            continue
        first = stats[(name, seconds, "first")]
        decode = (stat["wall_s"] - first["wall_s"]) / (ANSWER_TOKENS - 1)
        rows.append({
            "system": name, "seconds": seconds, "first_token_s": first["wall_s"], "answer_s": stat["wall_s"],
            "decode_ms_per_token": 1000 * decode, "tokens_per_s": 1 / decode if decode > 0 else None,
            "answer_cpu_s": stat["cpu_s"], "peak_extra_mib": stat["peak_mib"],
            "weights_mib": system_weights_mib(systems[name]),
            "clean_rounds": f"{min(first['clean_rounds'], stat['clean_rounds'])}/"
            f"{min(first['rounds'], stat['rounds'])}",
            "contended": first["contended"] or stat["contended"], "rounds": {"first": first, "answer": stat},
        })  # fmt: skip
    for (name, seconds, kind), stat in stats.items():
        if kind.startswith("answer,"):
            clips_in_batch = args.batch_size if "batch" in kind else 1
            rows.append({
                "system": name, "seconds": seconds, "extra": kind, "answer_s": stat["wall_s"],
                "tokens_per_s": clips_in_batch * ANSWER_TOKENS / stat["wall_s"], "answer_cpu_s": stat["cpu_s"],
                "peak_extra_mib": stat["peak_mib"], "contended": stat["contended"],
                "clean_rounds": f"{stat['clean_rounds']}/{stat['rounds']}", "rounds": {"answer": stat},
            })  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------------------ quality
def answers(system, data: dict, batch_size: int) -> dict[str, list[str]]:
    """The system's responses to the demo's repeat and question requests."""
    from voxlm.train.core.evaluate import generate_answers
    from voxlm.train.offline.demo import MAX_NEW_TOKENS, SPEECH_PROMPTS, TEXT_PROMPTS

    requests = {name: request for name, request in QUALITY_REQUESTS.items() if request[0] in data}
    if system.name == CASCADE:
        from voxlm.train.align.continuations import greedy_config
        from voxlm.train.align.evaluate import text_responses
        from voxlm.train.offline.speech import transcribe

        out = {}
        for name, (dataset, task) in requests.items():
            heard = transcribe(data[dataset]["audio"], model=system.whisper, processor=system.whisper_processor)
            prompts = [
                system.tokenizer.apply_chat_template(
                    [{"role": "user", "content": TEXT_PROMPTS[task].format(transcript=text)}],
                    tokenize=False, add_generation_prompt=True,
                )
                for text in heard
            ]  # fmt: skip
            config = greedy_config(system.model, system.tokenizer, MAX_NEW_TOKENS[task])
            out[name] = text_responses(system.model, system.tokenizer, prompts, config, batch_size)
        return out
    with torch.inference_mode():
        return {
            name: generate_answers(
                system.model, system.processor,
                [{"audio": clip, "instruction": SPEECH_PROMPTS[task]} for clip in data[dataset]["audio"]],
                batch_size=batch_size, max_new_tokens=MAX_NEW_TOKENS[task], progress=False,
            )
            for name, (dataset, task) in requests.items()
        }  # fmt: skip


def per_clip_scores(responses: dict, data: dict) -> dict[str, np.ndarray]:
    """Per clip: word edits and reference words (repeat requests), 0/1 correctness (questions)."""
    from voxlm.train.core.metrics import word_error_rate
    from voxlm.train.offline.sentences import SpokenQuestion, answer_is_correct, normalize_text

    scores = {}
    for name, (dataset, task) in QUALITY_REQUESTS.items():
        if name not in responses:
            continue
        table = data[dataset]
        if task == "repeat":
            words = np.array([len(normalize_text(text).split()) for text in table["text"]], dtype=float)
            wers = np.array([word_error_rate([ref], [hyp]) for ref, hyp in zip(table["text"], responses[name])])
            scores[name] = np.stack([wers * words, words])
        else:
            items = [SpokenQuestion(t, a, "", tuple(al)) for t, a, al in
                     zip(table["text"], table["answer"], table["aliases"])]  # fmt: skip
            scores[name] = np.array([answer_is_correct(r, q) for r, q in zip(responses[name], items)], dtype=float)
    return scores


def metric(scores: np.ndarray) -> float:
    """Corpus WER from (edits, words) columns, or accuracy from 0/1 values."""
    return float(scores[0].sum() / scores[1].sum()) if scores.ndim == 2 else float(scores.mean())


def paired_interval(variant: np.ndarray, reference: np.ndarray, seed: int, resamples: int = 2000) -> list[float]:
    """95% paired-bootstrap interval of metric(variant) - metric(reference), resampling clips."""
    rng = np.random.default_rng(seed)
    count = variant.shape[-1]
    deltas = []
    for _ in range(resamples):
        index = rng.integers(0, count, count)
        deltas.append(metric(variant[..., index]) - metric(reference[..., index]))
    return [float(np.percentile(deltas, 2.5)), float(np.percentile(deltas, 97.5))]


def quality_section(args, systems: dict, data: dict) -> list[dict]:
    rows, scores, responses = [], {}, {}
    for name, system in systems.items():
        if name.removeprefix("voxlm-") in INT4_ABLATIONS or (name == "voxlm-bf16" and not args.quality_bf16):
            continue  # the ablations differ from int4 only in speed (or by bf16 rounding in the prefill)
        started = time.time()
        responses[name] = answers(system, data, args.quality_batch)
        scores[name] = per_clip_scores(responses[name], data)
        say(f"  quality of {name}: {time.time() - started:.0f} s")
    reference = "voxlm-fp32" if "voxlm-fp32" in scores else None
    for name, per_clip in scores.items():
        row = {"system": name, "responses": responses[name]}
        for key, values in per_clip.items():
            row[key] = metric(values)
            row[f"{key}_clips"] = int(values.shape[-1])
            if reference and name not in (reference, CASCADE):
                row[f"{key}_delta_interval"] = paired_interval(values, scores[reference][key], args.seed)
        if reference and name != CASCADE:
            same = [a == b for key in responses[name] for a, b in zip(responses[name][key], responses[reference][key])]
            row["identical_to_fp32"] = f"{sum(same)}/{len(same)}"
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------------- report
def fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(results: dict) -> str:
    from voxlm.train.core.tables import render_table

    text = [f"Machine: {results['machine']}; {results['settings']['threads']} torch threads."]
    latency = results.get("latency")
    if latency:
        header = ["system", "clip s", "first token ms", "decode ms/token", "tokens/s", "32-token answer s",
                  "answer CPU s", "weights MiB", "peak extra MiB", "clean rounds"]  # fmt: skip
        body = [
            [row["system"], fmt(row["seconds"], 0), fmt(1000 * row["first_token_s"], 0),
             fmt(row["decode_ms_per_token"], 1), fmt(row["tokens_per_s"], 1),
             fmt(row["answer_s"], 2) + ("!" if row["contended"] else ""), fmt(row["answer_cpu_s"], 2),
             fmt(row["weights_mib"], 0), fmt(row["peak_extra_mib"], 0), row["clean_rounds"]]
            for row in latency if "extra" not in row
        ]  # fmt: skip
        text += ["", "Latency (from the waveform; greedy; `!`: no clean round, median of contended rounds)", ""]
        text.append(render_table(header, body))
        extras = [row for row in latency if "extra" in row]
        if extras:
            header = ["system", "clip s", "setting", "wall s", "new tokens/s", "CPU s", "clean rounds"]
            body = [[row["system"], fmt(row["seconds"], 0), row["extra"], fmt(row["answer_s"], 2),
                     fmt(row["tokens_per_s"], 1), fmt(row["answer_cpu_s"], 2), row["clean_rounds"]]
                    for row in extras]  # fmt: skip
            text += ["", "Other settings (32-token answers)", "", render_table(header, body)]
        text += ["", "Against fp32 and the cascade (5 s clip)", ""]
        text.append(render_table(*acceptance_table(latency)))
    quality = results.get("quality")
    if quality:
        keys = [key for key in QUALITY_REQUESTS if key in quality[0]]
        header = ["system", *(f"{QUALITY_NAMES[key]} ({quality[0][f'{key}_clips']})" for key in keys),
                  "identical answers to fp32"]  # fmt: skip
        body = []
        for row in quality:
            cells = [row["system"]]
            for key in keys:
                interval = row.get(f"{key}_delta_interval")
                extra = "" if interval is None else f" (Δ 95% [{interval[0]:+.3f}, {interval[1]:+.3f}])"
                cells.append(f"{row[key]:.3f}{extra}")
            cells.append(row.get("identical_to_fp32", "-"))
            body.append(cells)
        text += ["", "Quality (clips per set in brackets; Δ: paired-bootstrap interval of the difference from fp32)",
                 "", render_table(header, body)]  # fmt: skip
    return "\n".join(text)


def acceptance_table(latency: list[dict]) -> tuple[list[str], list[list[str]]]:
    rows = {row["system"]: row for row in latency if "extra" not in row and row["seconds"] == 5.0}
    header = ["system", "decode speed-up vs fp32", "first token ms", "answer speed-up vs cascade"]
    fp32, cascade = rows.get("voxlm-fp32"), rows.get(CASCADE)
    body = []
    for name, row in rows.items():
        speed = fmt(fp32["decode_ms_per_token"] / row["decode_ms_per_token"], 2) if fp32 else "-"
        versus = fmt(cascade["answer_s"] / row["answer_s"], 2) if cascade else "-"
        body.append([name, speed, fmt(1000 * row["first_token_s"], 0), versus])
    return header, body


# --------------------------------------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", choices=("latency", "quality"), default=["latency", "quality"])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="VoxLM variants")
    parser.add_argument("--no-cascade", action="store_true", help="leave out Whisper tiny.en -> SmolLM2")
    parser.add_argument("--model", type=Path, default=None, help="a VoxLM folder (default: the shipped checkpoint)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[2.0, 5.0, 10.0, 30.0], help="clip lengths")
    parser.add_argument(
        "--bf16-seconds",
        type=float,
        nargs="+",
        default=[5.0],
        help="clip lengths for bf16 (no fast bf16 matmul on AVX2 CPUs: each round takes seconds)",
    )
    parser.add_argument("--extras", action=argparse.BooleanOptionalAction, default=True,
                        help="also time int4 with 1 thread and a batch of clips (5 s)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=8, help="clips in the batched extra cell")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--rounds", type=int, default=3, help="clean rounds wanted per cell")
    parser.add_argument("--time-budget", type=float, default=420, help="seconds for the timed passes and retries")
    parser.add_argument("--min-cpu-ratio", type=float, default=0.0, help="CPU/wall below which a round is contended")
    parser.add_argument(
        "--max-other-cores",
        type=float,
        default=0.3,
        help="a round is contended when other processes kept more cores busy than this",
    )
    parser.add_argument("--per-set", type=int, default=24, help="clips per evaluation set (quality)")
    parser.add_argument(
        "--quality-bf16",
        action="store_true",
        help="also evaluate bf16 (without a fast bf16 matmul it takes ~20x longer than fp32)",
    )
    parser.add_argument("--quality-batch", type=int, default=12, help="batch size of the quality evaluation")
    parser.add_argument("--workdir", type=Path, default=Path("runs/latency"), help="cache of the evaluation sets")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results (sections merged in)")
    parser.add_argument("--report", type=Path, default=None, help="print the tables of a saved JSON and exit")
    parser.add_argument("--quick", action="store_true", help="2 s clips, fp32 and int4, 2 clips per set, 1 round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print every round")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.bf16_seconds, args.variants = [2.0], [2.0], ["fp32", "int4"]
        args.per_set, args.rounds, args.time_budget, args.extras, args.batch_size = 2, 1, 60, True, 2
    if any(seconds <= 0 or seconds > 30 for seconds in args.seconds + args.bf16_seconds):
        parser.error("--seconds must lie in (0, 30]: Whisper's window, the cascade's limit")
    return args


def main(argv=None) -> int:
    from transformers.utils import logging

    args = parse_args(argv)
    if args.report is not None:
        say(render(json.loads(args.report.read_text())))
        return 0
    logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.time()
    data = evaluation_data(args.workdir, args.per_set)
    data = {name: {key: values[: args.per_set] for key, values in table.items()} for name, table in data.items()}
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.model
        if folder is None:
            from voxlm.train.offline.shipped import hub_folder

            folder = hub_folder(Path(scratch) / "shipped")
        systems = {}
        for variant in args.variants:
            system = VoxLMSystem(folder, variant)
            systems[system.name] = system
        if not args.no_cascade:
            systems[CASCADE] = CascadeSystem()
        previous = json.loads(args.output.read_text()) if args.output.is_file() and not args.quick else {}
        results = {
            **previous,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, torch {torch.__version__}",
            "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        }
        if "latency" in args.sections:
            say(f"latency: {', '.join(systems)} on {args.seconds} s clips")
            results["latency"] = latency_section(args, systems, data["templates"]["audio"])
        if "quality" in args.sections:
            say("quality: repeat-WER and spoken-QA on the evaluation sets")
            results["quality"] = quality_section(args, systems, data)
    results["wall_seconds"] = {**previous.get("wall_seconds", {}), "+".join(args.sections): time.time() - started}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))
    say(render(results))
    say(f"\n{time.time() - started:.0f} s; results in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
