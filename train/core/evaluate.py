"""Generation-based evaluation of a VoxLM model, per task, with the shipped metric modules.

    python -m voxlm.train.core.evaluate --model runs/curriculum/final --config my_eval.yaml
    python -m voxlm.train.core.evaluate --model runs/curriculum/final --dataset data/test --task asr --max_samples 200

The model answers every example's prompt (greedy, batched with left padding, clips sorted by length so that
padding stays small); each task's metric compares the answers with the targets. The same functions evaluate during
training ([`GenerationEvaluator`], used by `VoxLMTrainer`), each process taking its share of the examples.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers.utils import logging

from .audio import SAMPLING_RATE
from .config import load_yaml
from .data import DatasetSpec, Source, TaskMixture, load_dataset_spec
from .prompts import build_prompt
from .tables import render_table
from .tasks import Task, build_tasks, get_task

logger = logging.get_logger(__name__)


@torch.no_grad()
def generate_answers(
    model,
    processor,
    examples: Sequence[dict],
    prompt_format: str = "chat",
    system_prompt: str | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    sampling_rate: int = SAMPLING_RATE,
    progress: bool = True,
    skip_special_tokens: bool = True,
    **generate_kwargs,
) -> list[str]:
    """Greedy answers of `model` to examples `{"audio", "instruction"}`, in the order given.

    Decoder-only models get left-padded prompts and only the new tokens are decoded; encoder-decoder models
    decode their whole output. Padding after a row's end of sequence is never part of its answer.
    """
    was_training = model.training
    model.eval()
    order = np.argsort([-len(example["audio"]) for example in examples], kind="stable")
    answers = [""] * len(examples)
    tokenizer = processor.tokenizer
    generate_kwargs = {"do_sample": False, "max_new_tokens": max_new_tokens, **generate_kwargs}
    generate_kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)
    is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    for start in tqdm(range(0, len(order), batch_size), desc="Generating", disable=not progress):
        batch = [examples[i] for i in order[start : start + batch_size]]
        prompts = [build_prompt(processor, ex["instruction"], prompt_format, system_prompt) for ex in batch]
        inputs = processor(
            text=prompts, audio=[ex["audio"] for ex in batch], sampling_rate=sampling_rate, padding_side="left"
        ).to(model.device)
        output = model.generate(**inputs, **generate_kwargs)
        new_tokens = output if is_encoder_decoder else output[:, inputs["input_ids"].shape[1] :]
        texts = [_decode(tokenizer, row, skip_special_tokens) for row in new_tokens]
        for index, text in zip(order[start : start + batch_size], texts):
            answers[index] = text.strip()
    model.train(was_training)
    return answers


def _decode(tokenizer, ids, skip_special_tokens: bool) -> str:
    ids = ids.tolist()
    while ids and ids[-1] == tokenizer.pad_token_id:  # batch padding after this row ended
        ids.pop()
    return tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)


def score_answers(examples: Sequence[dict], answers: Sequence[str], tasks: dict[str, Task]) -> dict[str, dict]:
    """Metrics per data set (per task for examples without a `source`):
    `{name: {"task": task, metric: value, ..., "examples": n}}`, each scored with its task's metric."""
    groups: dict[str, tuple[str, list, list]] = {}
    for example, answer in zip(examples, answers):
        name = example.get("source") or example["task"]
        _, predictions, references = groups.setdefault(name, (example["task"], [], []))
        predictions.append(answer)
        references.append(example["target"])
    results = {}
    for name, (task, predictions, references) in sorted(groups.items()):
        scores = get_task(tasks, task).score(predictions, references)
        numbers = {key: value for key, value in scores.items() if isinstance(value, (int, float))}
        results[name] = {"task": task, **numbers, "examples": len(predictions)}
    return results


def is_sharded(model) -> bool:
    """Whether `model`'s parameters are sharded across processes (FSDP or DeepSpeed ZeRO-3)."""
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    if is_deepspeed_zero3_enabled():
        return True
    try:
        from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel
    except ImportError:  # pragma: no cover - torch built without distributed support
        return False
    return any(isinstance(module, (FSDPModule, FullyShardedDataParallel)) for module in model.modules())


def flat_metrics(results: dict[str, dict], prefix: str = "eval") -> dict[str, float]:
    """`{name: {metric: v}}` -> `{"eval_<name>_<metric>": v, ...}` for logging."""
    return {
        f"{prefix}_{name}_{key}": value
        for name, scores in results.items()
        for key, value in scores.items()
        if isinstance(value, (int, float))
    }


@dataclass
class GenerationEvaluator:
    """Generation-based evaluation during training: a fixed set of examples, scored per task.

    With an `accelerator`, each process answers its share of the examples and the answers are gathered, so every
    process returns the same metrics. A model sharded across the processes (FSDP, DeepSpeed ZeRO-3) gathers its
    parameters in every forward pass, so all processes must run the same passes: each answers every example then
    (`generate` keeps their steps in step with `synced_gpus`).
    """

    processor: object
    examples: list[dict]
    tasks: dict[str, Task]
    prompt_format: str = "chat"
    system_prompt: str | None = None
    batch_size: int = 8
    max_new_tokens: int = 64
    generate_kwargs: dict = field(default_factory=dict)

    def __call__(self, model, accelerator=None) -> dict[str, dict]:
        rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
        shared = world > 1 and not is_sharded(model)
        indices = list(range(rank, len(self.examples), world)) if shared else list(range(len(self.examples)))
        answers = generate_answers(
            model,
            self.processor,
            [self.examples[i] for i in indices],
            self.prompt_format,
            self.system_prompt,
            self.batch_size,
            self.max_new_tokens,
            progress=rank == 0,
            **self.generate_kwargs,
        )
        pairs = list(zip(indices, answers))
        if shared:
            from accelerate.utils import gather_object

            pairs = gather_object(pairs)
        all_answers = [answer for _, answer in sorted(pairs)]
        return score_answers(self.examples, all_answers, self.tasks)


def examples_from_mixture(mixture: TaskMixture, per_source: int | None = None) -> list[dict]:
    """Materialise evaluation examples: the first `per_source` rows of every source (all by default)."""
    indices = []
    for number, size in enumerate(mixture.sizes):
        count = size if per_source is None else min(size, per_source)
        indices += range(int(mixture.offsets[number]), int(mixture.offsets[number]) + count)
    return [mixture[i] for i in indices]


# ------------------------------------------------------------------------------------------------------ CLI
def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m voxlm.train.core.evaluate",
        description="Evaluate a VoxLM model by generation, per task, with the shipped metric modules.",
    )
    parser.add_argument("--model", required=True, help="a saved VoxLM folder (model + processor) or Hub id")
    parser.add_argument("--config", help="YAML with `datasets:` (and optional `tasks:`, `prompt_format:`)")
    parser.add_argument("--dataset", help="one data set (Hub name or local folder) instead of --config")
    parser.add_argument("--task", default="asr", help="task of --dataset (default: asr)")
    parser.add_argument("--split", default="test", help="split of --dataset (default: test)")
    parser.add_argument("--columns", default="", help="column mapping for --dataset, e.g. audio=speech,text=sentence")
    parser.add_argument("--max_samples", type=int, help="evaluate at most this many rows per data set")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--prompt_format", choices=["chat", "plain"], help="default: chat if the tokenizer has one")
    parser.add_argument("--seed", type=int, default=0, help="seeds the prompt drawn for each example")
    parser.add_argument("--output", help="write predictions and metrics to this JSON file")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def _specs_from_args(args) -> tuple[list[DatasetSpec], dict, dict]:
    if bool(args.config) == bool(args.dataset):
        raise SystemExit("Give exactly one of --config (a YAML with `datasets:`) or --dataset.")
    if args.dataset:
        columns = dict(item.split("=", 1) for item in args.columns.split(",") if item)
        spec = DatasetSpec(path=args.dataset, task=args.task, split=args.split, columns=columns, name=args.task)
        return [spec], {}, {}
    config = load_yaml(args.config)
    entries = config.get("eval_datasets") or config.get("datasets") or {}
    if not entries:
        raise SystemExit(f"{args.config} has no `datasets:` (or `eval_datasets:`) section.")
    specs = [DatasetSpec.from_dict(name, dict(values)) for name, values in entries.items()]
    return specs, config.get("tasks") or {}, config


def main(argv=None) -> dict:
    args = _parse_args(argv)
    from voxlm.modeling import VoxLMForConditionalGeneration
    from voxlm.processing import VoxLMProcessor

    specs, task_settings, config = _specs_from_args(args)
    tasks = build_tasks(task_settings)
    sources = []
    for spec in specs:
        if args.max_samples is not None:
            spec.max_samples = min(spec.max_samples or args.max_samples, args.max_samples)
        task = get_task(tasks, spec.task)
        dataset = load_dataset_spec(spec)
        spec.require_columns(dataset, task.required_columns)
        sources.append(Source(spec, dataset, task, spec.weight))
    model = VoxLMForConditionalGeneration.from_pretrained(args.model).to(args.device)
    processor = VoxLMProcessor.from_pretrained(args.model)
    prompt_format = args.prompt_format or config.get("prompt_format")
    prompt_format = prompt_format or ("chat" if processor.tokenizer.chat_template else "plain")
    results, predictions = {}, {}
    for source in sources:
        examples = examples_from_mixture(TaskMixture([source], seed=args.seed))
        answers = generate_answers(
            model, processor, examples, prompt_format, config.get("system_prompt"), args.batch_size, args.max_new_tokens
        )
        results[source.spec.name] = score_answers(examples, answers, tasks)[source.spec.name]
        predictions[source.spec.name] = [
            {"prompt": ex["instruction"], "target": ex["target"], "answer": answer}
            for ex, answer in zip(examples, answers)
        ]
    print(format_table(results))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump({"model": args.model, "metrics": results, "predictions": predictions}, handle, indent=2)
    return results


def format_table(results: dict[str, dict]) -> str:
    """Metrics `{name: {metric: value}}` as an aligned text table."""
    keys = sorted({key for scores in results.values() for key in scores if key not in ("examples", "task")})
    header = ["data set", "task", "examples", *keys]
    rows = [
        [name, scores.get("task", ""), scores.get("examples", ""), *[scores.get(key) for key in keys]]
        for name, scores in results.items()
    ]
    return render_table(header, rows)


if __name__ == "__main__":
    main(sys.argv[1:])
