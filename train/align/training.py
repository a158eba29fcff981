"""Step 2 of behaviour alignment: train the adapter so that the LLM, given the speech, behaves as given the text.

`--objective blsp` (BLSP): cross-entropy on the continuation + EOS, the speech in place of the transcript under the
same instruction as step 1. `--objective kd` (BLSP-KD, Wang et al., arXiv 2405.19041): KL divergence between the
LLM's next-token distributions over the continuation given the transcript (teacher, no gradient) and given the
speech (student), at a temperature; optionally plus a weighted cross-entropy. BLSP-KD also segments speech with
continuous integrate-and-fire to align it token by token with the transcript; here the distributions are matched on
the continuation tokens only, which both inputs share one for one.

The speech encoder and the LLM stay frozen; only the adapter (and the layer weights of `audio_layer="mix"`) train.
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch.nn import functional as F
from transformers import TrainingArguments
from transformers.utils import logging

from voxlm.train.core.batching import BatchingSpec, BudgetBatchedStream, BudgetBatchSampler, example_costs
from voxlm.train.core.data import TEACHER_PREFIX, DatasetSpec, Source, SpeechTaskCollator, StreamingTaskMixture
from voxlm.train.core.launch import use_cpu
from voxlm.train.core.models import ModelSpec, assemble_voxlm, is_voxlm_folder, load_voxlm
from voxlm.train.core.prompts import BLSP_INSTRUCTION, TRANSCRIPT, PromptFormat
from voxlm.train.core.trainer import VoxLMTrainer

from .continuations import SETTINGS_FILE
from .data import ContinuationExamples, check_table_columns, data_root, load_table

logger = logging.get_logger(__name__)
OBJECTIVES = ("blsp", "kd")


@dataclass
class AlignTrainArguments:
    data: str = field(metadata={"help": "Continuation data: the output folder of `align continuations` (or a table)."})
    model: str | None = field(
        default=None, metadata={"help": "A VoxLM folder to start from (e.g. one whose adapter was warmed up)."}
    )
    audio_model: str | None = field(default=None, metadata={"help": "Speech model to assemble from (no --model)."})
    text_model: str | None = field(default=None, metadata={"help": "Language model to assemble from (no --model)."})
    adapter: str = field(default="blsp", metadata={"help": "Adapter preset (blsp, speechverse, ultravox) or JSON."})
    audio_layer: str = field(default="-1", metadata={"help": "Encoder layer feeding the adapter: -1, k or mix."})
    objective: Literal["blsp", "kd"] = field(
        default="blsp", metadata={"help": "blsp (cross-entropy) or kd (BLSP-KD distillation)."}
    )
    kd_temperature: float = field(default=1.0, metadata={"help": "Softmax temperature of the KD loss."})
    kd_ce_weight: float = field(default=0.0, metadata={"help": "Weight of the cross-entropy added to the KD loss."})
    instruction: str | None = field(
        default=None, metadata={"help": "Instruction with {transcript}; default: the one the continuations used."}
    )
    template: Literal["chat", "blsp", "plain"] | None = field(
        default=None, metadata={"help": "Prompt template; default: the one the continuations used."}
    )
    split: str = field(default="train", metadata={"help": "Split of a DatasetDict or Hub data set."})
    audio_column: str = field(default="audio", metadata={"help": "Column of audio references."})
    transcript_column: str = field(default="transcript", metadata={"help": "Column of transcripts."})
    continuation_column: str = field(default="continuation", metadata={"help": "Column of continuations."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N rows."})
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Read --data lazily (`datasets` streaming: a Hub data set or a folder of parquet files too large "
            "to load): each process reads its own shard and examples are grouped into budgeted batches as they "
            "are read. Needs --max_steps and --max_seconds or --max_tokens."
        },
    )
    max_seconds: float | None = field(
        default=None,
        metadata={
            "help": "Budgeted length-grouped batches (as the curriculum's `batching:`): padded audio seconds per "
            "batch, batch size x longest clip. With this or --max_tokens, batches replace "
            "--per_device_train_batch_size."
        },
    )
    max_tokens: int | None = field(
        default=None,
        metadata={"help": "Budgeted batches: padded LLM positions per batch (audio + prompt + continuation)."},
    )
    max_batch_size: int = field(default=64, metadata={"help": "Budgeted batches: at most this many clips."})
    sort_window: int = field(
        default=1000,
        metadata={
            "help": "Budgeted batches: clips sorted by length together (with --streaming, the buffer read "
            "before batches are cut)."
        },
    )


@dataclass
class AlignTrainingArguments(TrainingArguments):
    """`TrainingArguments` with BLSP's step-2 settings (lr 5e-5, weight decay 0.05, clipping 1.0) as defaults."""

    output_dir: str | None = field(default=None, metadata={"help": "Where checkpoints and the final model go."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate (BLSP: 5e-5)."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay (BLSP: 0.05)."})
    warmup_steps: float = field(default=0.05, metadata={"help": "Warm-up steps, or a ratio of all steps if < 1."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Batch size per process (BLSP: 8)."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep at most N checkpoints."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep the raw columns for the collator."})
    ddp_find_unused_parameters: bool | None = field(
        default=False, metadata={"help": "Every trainable (adapter) parameter is used in each step."}
    )

    def __post_init__(self):
        if not self.output_dir:
            raise ValueError("`align train` needs --output_dir.")
        if use_cpu():
            self.use_cpu = True  # also makes several CPU processes (torchrun) one distributed job
        super().__post_init__()


# -------------------------------------------------------------------------------------------------- data
def prompt_format_for(args: AlignTrainArguments) -> PromptFormat:
    """The instruction and template given, else those recorded by `align continuations`, else BLSP's."""
    recorded = {}
    settings = Path(args.data) / SETTINGS_FILE
    if settings.is_file():
        recorded = json.loads(settings.read_text())
    return PromptFormat(
        args.instruction or recorded.get("instruction", BLSP_INSTRUCTION),
        args.template or recorded.get("template", "chat"),
    )


# -------------------------------------------------------------------------------------------------- loss
def label_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) labels -> the positions (K,) that predict a label in some row, and (B, K) the label each predicts
    (-100 where none). Only these positions need the LM head (`logits_to_keep`)."""
    shifted = F.pad(labels, (0, 1), value=-100)[:, 1:]  # position t predicts label t + 1
    positions = (shifted != -100).any(dim=0).nonzero().squeeze(-1)
    return positions, shifted[:, positions]


def distillation_loss(
    student_logits: torch.Tensor,
    student_targets: torch.Tensor,
    teacher_logits: torch.Tensor,
    teacher_targets: torch.Tensor,
    temperature: float = 1.0,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(teacher || student) of the next-token distributions over the response tokens, times T^2 (Hinton et al.),
    summed and divided by `num_items_in_batch` (all response tokens of the accumulated batch) or by their count.

    Logits are (B, K, V) at kept positions and targets (B, K) the labels those positions predict (-100: none), as
    from `label_positions`; each row's response tokens pair up in order."""
    student_mask, teacher_mask = student_targets != -100, teacher_targets != -100
    student_counts, teacher_counts = student_mask.sum(-1), teacher_mask.sum(-1)
    if not torch.equal(student_counts, teacher_counts):
        raise ValueError(
            f"Teacher and student responses differ in length ({teacher_counts.tolist()} vs {student_counts.tolist()} "
            "tokens); both must be the same continuation."
        )
    student = F.log_softmax(student_logits[student_mask].float() / temperature, dim=-1)  # (M, V)
    teacher = F.log_softmax(teacher_logits[teacher_mask].float() / temperature, dim=-1)
    total = F.kl_div(student, teacher, log_target=True, reduction="sum") * temperature**2
    denominator = num_items_in_batch if num_items_in_batch is not None else max(int(student_counts.sum()), 1)
    return total / denominator


def kd_loss(model, inputs: dict, temperature: float, ce_weight: float = 0.0, num_items_in_batch=None):
    """BLSP-KD loss of a batch from `SpeechTaskCollator(with_teacher=True)`; returns (loss, student outputs).

    Both forward passes compute the LM head only at the positions that predict a response token."""
    inputs = dict(inputs)
    teacher = {key[len(TEACHER_PREFIX) :]: inputs.pop(key) for key in list(inputs) if key.startswith(TEACHER_PREFIX)}
    if not teacher:
        raise ValueError("The KD loss needs teacher inputs; build batches with SpeechTaskCollator(with_teacher=True).")
    teacher_positions, teacher_targets = label_positions(teacher["labels"])
    with torch.no_grad():
        teacher_logits = model(
            input_ids=teacher["input_ids"], attention_mask=teacher["attention_mask"], logits_to_keep=teacher_positions
        ).logits
    positions, targets = label_positions(inputs.pop("labels"))
    outputs = model(**inputs, logits_to_keep=positions)
    loss = distillation_loss(outputs.logits, targets, teacher_logits, teacher_targets, temperature, num_items_in_batch)
    if ce_weight:
        mask = targets != -100
        denominator = num_items_in_batch if num_items_in_batch is not None else max(int(mask.sum()), 1)
        cross_entropy = F.cross_entropy(outputs.logits[mask].float(), targets[mask], reduction="sum") / denominator
        loss = loss + ce_weight * cross_entropy
    return loss, outputs


class AlignTrainer(VoxLMTrainer):
    """`VoxLMTrainer` (budgeted length-grouped batches when given a `train_batch_sampler`) with the BLSP-KD loss when
    `objective="kd"` (the BLSP objective is the model's own loss)."""

    def __init__(self, *args, objective: str = "blsp", kd_temperature: float = 1.0, kd_ce_weight: float = 0.0, **kw):
        super().__init__(*args, **kw)
        self.objective, self.kd_temperature, self.kd_ce_weight = objective, kd_temperature, kd_ce_weight

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.objective == "blsp":
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = kd_loss(model, inputs, self.kd_temperature, self.kd_ce_weight, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # `num_items_in_batch` counts every process's tokens
        return (loss, outputs) if return_outputs else loss


# ------------------------------------------------------------------------------------------------- model
def build_model(args: AlignTrainArguments, seed: int = 0):
    """A VoxLM checkpoint (`--model`) or a fresh assembly (`--audio_model` + `--text_model`, its adapter initialised
    from `seed`), adapter-only trainable."""
    if args.model:
        if not is_voxlm_folder(args.model):
            raise ValueError(
                f"--model {args.model} is not a VoxLM folder; to assemble one pass --audio_model/--text_model."
            )
        model, processor = load_voxlm(args.model)
    elif args.audio_model and args.text_model:
        adapter = json.loads(args.adapter) if args.adapter.lstrip().startswith("{") else args.adapter
        audio_layer = args.audio_layer if args.audio_layer == "mix" else int(args.audio_layer)
        spec = ModelSpec(
            audio_model=args.audio_model,
            text_model=args.text_model,
            adapter=adapter,
            audio_layer=audio_layer,
            dtype=None,
        )
        model, processor = assemble_voxlm(spec, seed)
    else:
        raise ValueError("Pass --model (a VoxLM folder) or both --audio_model and --text_model.")
    model.train_adapter_only()
    return model, processor


def check_streaming(args: AlignTrainArguments, training_args: AlignTrainingArguments) -> None:
    """Raise, naming the option to set, if `--streaming` lacks what a stream needs (before any model loads)."""
    if not args.streaming:
        return
    if training_args.max_steps <= 0:
        raise ValueError("--streaming reads data that has no length: set --max_steps (optimizer steps).")
    if args.max_seconds is None and args.max_tokens is None:
        raise ValueError(
            "--streaming groups examples into budgeted batches as they are read: set --max_seconds and/or "
            "--max_tokens (padded audio seconds / LLM positions per batch)."
        )


def training_examples(args: AlignTrainArguments, prompt_format: PromptFormat) -> ContinuationExamples:
    """The continuation table (streamed with `--streaming`) read as training examples."""
    table = load_table(args.data, args.split, args.limit, streaming=args.streaming)
    columns = [args.audio_column, args.continuation_column]
    if args.objective == "kd":
        columns.append(args.transcript_column)
    check_table_columns(table, columns, args.data)
    if not args.streaming and "length" not in table.column_names and args.transcript_column in table.column_names:
        # For `--train_sampling_strategy group_by_length`: characters stand in for audio + response length.
        lengths = [len(t) + len(c) for t, c in zip(table[args.transcript_column], table[args.continuation_column])]
        table = table.add_column("length", lengths)
    return ContinuationExamples(
        table,
        prompt_format.instruction,
        args.audio_column,
        args.transcript_column,
        args.continuation_column,
        audio_root=data_root(args.data),
    )


def batching_spec(args: AlignTrainArguments) -> BatchingSpec:
    return BatchingSpec(args.max_seconds, args.max_tokens, args.max_batch_size, args.sort_window)


def batch_sampler(args: AlignTrainArguments, examples: ContinuationExamples, processor, model, seed: int):
    """Budgeted length-grouped batches when `--max_seconds` or `--max_tokens` asks for them, else None (the
    trainer's fixed-size batches)."""
    if args.max_seconds is None and args.max_tokens is None:
        return None
    spec = batching_spec(args)
    costs, _ = example_costs(examples, spec, processor, model.config.audio_positions_per_second)
    return BudgetBatchSampler.from_spec(spec, costs, seed)


def streamed_batches(args: AlignTrainArguments, examples: ContinuationExamples, processor, model, training_args):
    """The streamed table as budgeted batches of examples, read as the curriculum reads its streamed data sets:
    each process its own shard (`StreamingTaskMixture`), grouped through a buffer (`BudgetBatchedStream`)."""
    spec = batching_spec(args)
    source = Source(DatasetSpec(path=args.data, split=args.split, streaming=True, name=args.data), examples.table, None)
    mixture = StreamingTaskMixture(
        [source],
        seed=training_args.seed,
        rank=training_args.process_index,
        world_size=training_args.world_size,
        to_example=examples.example,
    )
    positions_per_second = model.config.audio_positions_per_second
    return BudgetBatchedStream.from_spec(spec, mixture, training_args.seed, processor, positions_per_second)


def train(args: AlignTrainArguments, training_args: AlignTrainingArguments):
    """Run step 2 and save the model and processor to `training_args.output_dir`; returns the trainer."""
    if args.objective not in OBJECTIVES:
        raise ValueError(f"Unknown objective {args.objective!r}; use one of {', '.join(OBJECTIVES)}.")
    check_streaming(args, training_args)
    model, processor = build_model(args, training_args.seed)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info(f"Training {trainable:,} of {total:,} parameters (adapter only), objective {args.objective}.")
    prompt_format = prompt_format_for(args)
    examples = training_examples(args, prompt_format)
    if args.streaming:  # the stream yields examples, already in batches
        train_dataset, sampler = streamed_batches(args, examples, processor, model, training_args), None
    else:  # the collator reads each row's clip
        train_dataset, sampler = examples.table, batch_sampler(args, examples, processor, model, training_args.seed)
    collator = SpeechTaskCollator(
        processor,
        prompt_format=prompt_format.template,
        with_teacher=args.objective == "kd",
        to_example=None if args.streaming else examples.example,
    )
    trainer = AlignTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=collator,
        processing_class=processor,
        train_batch_sampler=sampler,
        objective=args.objective,
        kd_temperature=args.kd_temperature,
        kd_ce_weight=args.kd_ce_weight,
    )
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_trained_model(training_args.output_dir)  # every process: FSDP/DeepSpeed gather the weights
    if trainer.is_world_process_zero():
        settings = {"prompt_format": prompt_format.to_dict(), "objective": args.objective}
        (Path(training_args.output_dir) / "align_settings.json").write_text(json.dumps(settings, indent=2))
        run_info(args, training_args, trainer, prompt_format, time.perf_counter() - started).save(
            training_args.output_dir
        )
        logger.info(f"Saved the model, processor and run_info.json to {training_args.output_dir}.")
    return trainer


def run_info(args: AlignTrainArguments, training_args, trainer, prompt_format: PromptFormat, seconds: float):
    """The run record for the model card (`voxlm push`): a starting checkpoint's record plus this stage."""
    from voxlm.hub_cards import RUN_INFO_NAME, RunInfo, describe_hardware

    start = Path(args.model) if args.model else None
    info = RunInfo.load(start) if start and (start / RUN_INFO_NAME).is_file() else RunInfo(kind="voxlm")
    recipe = "blsp" if args.objective == "blsp" else "blsp-kd"
    info.recipe = recipe if info.recipe in (None, recipe) else f"{info.recipe} + {recipe}"
    if not info.base_models and args.audio_model:
        info.base_models = {"audio": args.audio_model, "text": args.text_model}
    model = trainer.model
    description = {
        "blsp": "adapter only: the LLM given the speech learns to write its own continuation of the transcript",
        "kd": f"adapter only: KL to the LLM's next-token distributions given the transcript (T={args.kd_temperature})",
    }[args.objective]
    info.add_stage(
        recipe,
        model,
        description=description,
        trained=[name for name in ("projector", "layer_mix") if getattr(model, name, None) is not None],
        steps=trainer.state.global_step,
        epochs=round(float(trainer.state.epoch or 0), 3),
        learning_rate=training_args.learning_rate,
    )
    info.datasets.append({"id": str(args.data), "description": "speech, transcripts and LLM continuations"})
    previous = float(info.training.get("seconds", 0))
    info.training = {**info.training, "seconds": round(previous + seconds), "hardware": describe_hardware()}
    info.training["seed"] = training_args.seed
    info.instruction = prompt_format.instruction.replace(TRANSCRIPT, "").strip()
    return info
