"""SpeechVerse-style multitask curriculum training (Das et al., arXiv 2405.08295), on transformers' `Trainer`.

    accelerate launch -m voxlm.train.curriculum --config recipe.yaml
    accelerate launch -m voxlm.train.curriculum --config recipe.yaml --resume_from_checkpoint   # after a kill

The recipe YAML names a starting model, data sets (each bound to a task) and a list of stages. The paper's
curriculum is three stages:

1. `adapter`: the frozen encoder's layer weights (`audio_layer: mix`) and the downsampler/adapter learn on ASR;
2. `lora_asr`: peft LoRA is added to the frozen LLM (`lora:`), warmed up on ASR;
3. `multitask`: the other tasks are mixed in by per-data-set weights.

Each stage starts from the model the previous stage saved (`<output_dir>/NN-<stage>/model`), trains for a step
budget (`max_steps`) or until the validation loss has not improved for `early_stopping_patience` evaluations, and
prints a summary table. The last stage's model, with its processor and code files, is saved Hub-ready to
`<output_dir>/final` (LoRA merged into the LLM, or kept as separate layers recorded in the config).

Deviation from the paper, optional: a stage with `objective: ctc` is a cheap alignment warm-up (see
`voxlm.train.curriculum.ctc`): CTC from the adapter's output onto the frozen LLM's input embeddings of the transcript,
with no LLM forward pass. It trains the adapter and layer weights only, on ASR data, before the language-model stages.

Bad configurations (unknown task or data set, a missing column, a LoRA target the LLM does not have, stages in an
order the curriculum does not allow) stop the run before any training step, with a message naming the fix.
See `train/configs/` for complete examples.
"""

import argparse
import importlib
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field

import torch
from transformers import EarlyStoppingCallback, TrainingArguments, set_seed
from transformers.utils import logging

from voxlm.train.core.batching import (
    BatchingSpec,
    BudgetBatchedStream,
    BudgetBatchSampler,
    example_costs,
)
from voxlm.train.core.config import check_keys, from_dict, load_config
from voxlm.train.core.data import (
    DatasetSpec,
    Source,
    SpeechTaskCollator,
    StreamingTaskMixture,
    TaskMixture,
    load_dataset_spec,
)
from voxlm.train.core.evaluate import GenerationEvaluator, examples_from_mixture
from voxlm.train.core.launch import distributed_state, sharded_engine, use_cpu
from voxlm.train.core.models import ModelSpec, prepare_model_folder
from voxlm.train.core.tables import render_table
from voxlm.train.core.tasks import build_tasks, get_task
from voxlm.train.core.trainer import TrainingClock, VoxLMTrainer, last_complete_checkpoint

from .ctc import CTCAlignmentModel, CTCCollator

logger = logging.get_logger("voxlm.train.curriculum")

OBJECTIVES = ("lm", "ctc")
TRAINABLE_PARTS = ("adapter", "layer_mix", "lora", "audio_encoder", "language_model")
STAGE_DONE = "stage.json"
INITIAL_FOLDER = "00-initial"
START_METRICS = "start.json"


# -------------------------------------------------------------------------------------------------- config
@dataclass
class LoraSpec:
    """peft LoRA on the language model: rank, scaling, dropout, the module names it wraps (or `all-linear`), and
    whether it acts only from each prompt's first audio clip on (`speech_only`: text-only prompts keep the language
    model's own answers; such LoRA is never merged)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] | str = field(default_factory=lambda: ["q_proj", "v_proj"])
    speech_only: bool = False


@dataclass
class StageSpec:
    """One curriculum stage.

    Args:
        name: folder and log name.
        datasets: training data sets, a list of names or `{name: weight}` (weights default to the data set's).
        objective: `lm` (next-token loss on the target) or `ctc` (the alignment warm-up; ASR data only).
        ctc_vocabulary: with `ctc`, `all` (softmax over the LLM's whole vocabulary) or `batch` (over the tokens of
            the batch's transcripts: a sampled softmax, several times cheaper with a large vocabulary).
        train: parts that learn, among `adapter`, `layer_mix`, `lora`, `audio_encoder`, `language_model`; default
            `adapter` + `layer_mix` (+ `lora` once it has been added).
        lora: add LoRA to the LLM in this stage (once per curriculum).
        eval_datasets: validation data sets (eval loss, generation metrics at the stage's end).
        max_steps / num_train_epochs: the budget (optimizer steps, or epochs over `examples_per_epoch`).
        early_stopping_patience / early_stopping_threshold: stop when the eval loss has not improved (by more than
            the threshold) for this many evaluations; the best checkpoint is kept.
        examples_per_epoch: examples drawn per epoch from the weighted mixture (default: all rows once).
        training: `TrainingArguments` for this stage (learning_rate, eval_steps, ...), over the top-level ones.
    """

    name: str
    datasets: dict | list
    objective: str = "lm"
    ctc_vocabulary: str = "all"
    train: list[str] | None = None
    lora: dict | None = None
    eval_datasets: list[str] = field(default_factory=list)
    max_steps: int = -1
    num_train_epochs: float | None = None
    early_stopping_patience: int | None = None
    early_stopping_threshold: float = 0.0
    examples_per_epoch: int | None = None
    training: dict = field(default_factory=dict)


@dataclass
class EvaluationSpec:
    """Generation-based evaluation: `examples` rows of each of `datasets` (default: every stage's eval data set),
    answered at the start and after every stage, so each table row compares the same examples (and at every
    evaluation step if `during_training`, on the stage's own eval data sets)."""

    examples: int = 16
    datasets: list[str] | None = None
    during_training: bool = False
    before_first_stage: bool = True
    max_new_tokens: int = 64
    batch_size: int = 8


@dataclass
class FinalSpec:
    """The Hub-ready result: a run folder `<output_dir>/<folder>` for `voxlm push` (model, processor, code and
    `run_info.json`); `merge_lora` folds LoRA into the LLM weights. `run_info` sets card fields the run cannot know
    (`license`, `language`, `datasets`, `limitations`, `notes`, ...; see `voxlm.hub_cards.RunInfo`)."""

    merge_lora: bool = False
    folder: str = "final"
    run_info: dict = field(default_factory=dict)


@dataclass
class CurriculumConfig:
    model: ModelSpec
    datasets: dict[str, DatasetSpec]
    stages: list[StageSpec]
    output_dir: str
    seed: int = 0
    tasks: dict = field(default_factory=dict)
    prompt_format: str | None = None
    system_prompt: str | None = None
    batching: BatchingSpec = field(default_factory=BatchingSpec)
    training: dict = field(default_factory=dict)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    final: FinalSpec = field(default_factory=FinalSpec)
    callbacks: list[str] = field(default_factory=list)
    strict_curriculum: bool = True
    keep_checkpoints: bool = False  # a finished stage's checkpoints only serve to resume it: removed by default
    augment: dict | None = None  # acoustic augmentation of every training data set (voxlm.train.core.augment)

    @classmethod
    def from_dict(cls, values: dict) -> "CurriculumConfig":
        """The recipe from its YAML mapping, every key checked (see `voxlm.train.core.config.from_dict`)."""
        values = dict(values)
        if "datasets" in values:
            entries = values["datasets"] or {}
            values["datasets"] = {name: DatasetSpec.from_dict(name, dict(spec or {})) for name, spec in entries.items()}
        if "stages" in values:
            if not isinstance(values["stages"], list) or not values["stages"]:
                raise ValueError("config: `stages` must be a non-empty list of stages.")
            for number, stage in enumerate(values["stages"], start=1):
                if not isinstance(stage, dict) or "name" not in stage or "datasets" not in stage:
                    raise ValueError(f"stage {number}: each stage needs at least `name` and `datasets`.")
            values["stages"] = [from_dict(StageSpec, f"stage {stage['name']!r}", stage) for stage in values["stages"]]
        config = from_dict(cls, "config", values)
        if config.augment:
            from voxlm.train.core.augment import AugmentSpec

            AugmentSpec.from_dict(config.augment)  # a bad effect or key fails before anything trains
        from voxlm.hub_cards import RunInfo

        check_keys("config.final.run_info", config.final.run_info, RunInfo.__dataclass_fields__)
        return config

    @classmethod
    def from_yaml(cls, path: str, overrides: dict | None = None) -> "CurriculumConfig":
        """The recipe in a YAML file; `overrides` (e.g. from the command line) replace top-level keys."""
        return cls.from_dict(load_config(path, overrides))


# ---------------------------------------------------------------------------------------------- validation
@dataclass
class StagePlan:
    """A checked stage: its data set weights, what trains, and whether the model has LoRA by then."""

    spec: StageSpec
    weights: dict[str, float]
    train: list[str]
    lora: LoraSpec | None
    has_lora: bool


def plan_stages(config: CurriculumConfig, tasks: dict, model_has_lora: bool = False) -> list[StagePlan]:
    """Check the stages against each other, the data sets and the tasks; raise with the fix on the first problem."""
    names = [stage.name for stage in config.stages]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Stage names must be unique; {duplicates} appear more than once. Rename them.")
    for name, spec in config.datasets.items():
        try:
            get_task(tasks, spec.task)
        except ValueError as error:
            raise ValueError(f"Data set {name!r}: {error}") from None
    plans, has_lora, lora_stage, seen_lm = [], model_has_lora, None, None
    for stage in config.stages:
        where = f"Stage {stage.name!r}"
        if stage.objective not in OBJECTIVES:
            raise ValueError(f"{where}: `objective` must be one of {OBJECTIVES}, got {stage.objective!r}.")
        weights = _stage_weights(stage, config.datasets)
        for name in stage.eval_datasets:
            _known_dataset(name, config.datasets, where)
            if config.datasets[name].streaming:
                raise ValueError(f"{where}: eval data set {name!r} is streamed; evaluate on a map-style split.")
        lora = None
        if stage.lora is not None:
            if stage.objective == "ctc":
                raise ValueError(f"{where}: a `ctc` stage trains the adapter only; move `lora:` to an `lm` stage.")
            if has_lora:
                origin = f"stage {lora_stage!r}" if lora_stage else "the starting model"
                raise ValueError(
                    f"{where} adds LoRA but {origin} already has it; LoRA is added once. Remove `lora:` here "
                    "(later stages keep training it)."
                )
            lora = from_dict(LoraSpec, f"{where} lora", stage.lora)
            has_lora, lora_stage = True, stage.name
        train = _stage_parts(stage, has_lora, where)
        stage_tasks = {config.datasets[name].task for name in weights}
        non_asr = sorted(task for task in stage_tasks if get_task(tasks, task).kind != "asr")
        if stage.objective == "ctc":
            if non_asr:
                raise ValueError(f"{where}: the `ctc` objective needs transcripts (ASR data); drop {non_asr} here.")
            if seen_lm:
                raise ValueError(
                    f"{where}: `ctc` is an alignment warm-up and must come before the language-model stages "
                    f"(it follows {seen_lm!r}). Move it to the start of `stages`."
                )
        else:
            seen_lm = seen_lm or stage.name
        if non_asr and "lora" not in train and config.strict_curriculum:
            raise ValueError(
                f"{where} mixes in task(s) {non_asr} before LoRA is added. In the SpeechVerse curriculum the "
                "adapter-only stage sees ASR only, then LoRA is added and warmed up on ASR, then other tasks join. "
                "Move these data sets to a stage after the one with `lora:`, or set `strict_curriculum: false`."
            )
        if stage.max_steps <= 0 and stage.num_train_epochs is None:
            raise ValueError(f"{where}: give a budget, `max_steps: N` (optimizer steps) or `num_train_epochs`.")
        if stage.max_steps <= 0 and any(config.datasets[name].streaming for name in weights):
            raise ValueError(f"{where} trains on streamed data, which has no length: set `max_steps`.")
        if stage.early_stopping_patience is not None and not stage.eval_datasets:
            raise ValueError(f"{where}: early stopping watches the validation loss; add `eval_datasets: [...]`.")
        plans.append(StagePlan(stage, weights, train, lora, has_lora))
    for name in config.evaluation.datasets or []:
        _known_dataset(name, config.datasets, "evaluation.datasets")
        if config.datasets[name].streaming:
            raise ValueError(f"evaluation.datasets: {name!r} is streamed; evaluate on a map-style split.")
    return plans


def _known_dataset(name: str, datasets: dict, where: str) -> None:
    if name not in datasets:
        raise ValueError(
            f"{where} uses data set {name!r}, which is not defined under `datasets:` ({sorted(datasets)})."
        )


def _stage_weights(stage: StageSpec, datasets: dict[str, DatasetSpec]) -> dict[str, float]:
    entries = stage.datasets if isinstance(stage.datasets, dict) else {name: None for name in stage.datasets}
    if not entries:
        raise ValueError(f"Stage {stage.name!r} has no training data sets.")
    weights = {}
    for name, weight in entries.items():
        _known_dataset(name, datasets, f"Stage {stage.name!r}")
        weights[name] = float(datasets[name].weight if weight is None else weight)
        if weights[name] <= 0:
            raise ValueError(f"Stage {stage.name!r}: the weight of {name!r} must be > 0.")
    return weights


def _stage_parts(stage: StageSpec, has_lora: bool, where: str) -> list[str]:
    if stage.train is None:
        return ["adapter", "layer_mix"] + (["lora"] if has_lora and stage.objective == "lm" else [])
    unknown = sorted(set(stage.train) - set(TRAINABLE_PARTS))
    if unknown:
        raise ValueError(f"{where}: unknown `train` part(s) {unknown}; choose from {list(TRAINABLE_PARTS)}.")
    if "lora" in stage.train and not has_lora:
        raise ValueError(
            f"{where} trains `lora` but no LoRA has been added yet; add `lora: {{r: 8, alpha: 16}}` to this stage "
            "or an earlier one."
        )
    if stage.objective == "ctc" and set(stage.train) - {"adapter", "layer_mix"}:
        raise ValueError(f"{where}: the `ctc` objective trains only `adapter` and `layer_mix`.")
    return list(stage.train)


def check_lora_targets(text_config, lora: LoraSpec) -> None:
    """Raise unless every LoRA target names a module of the language model (built on the meta device)."""
    import re

    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    targets = lora.target_modules
    if targets == "all-linear":
        return
    auto = AutoModelForSeq2SeqLM if getattr(text_config, "is_encoder_decoder", False) else AutoModelForCausalLM
    with torch.device("meta"):
        skeleton = auto.from_config(text_config)
    names = [name for name, _ in skeleton.named_modules() if name]
    linear = sorted(
        {name.rsplit(".", 1)[-1] for name, module in skeleton.named_modules() if isinstance(module, torch.nn.Linear)}
    )
    if isinstance(targets, str):  # peft treats a string as a regular expression over full module names
        if not any(re.fullmatch(targets, name) for name in names):
            raise ValueError(
                f"LoRA target pattern {targets!r} matches no module of the language model "
                f"({type(skeleton).__name__}). Its linear layers are {linear}; set `lora.target_modules`."
            )
        return
    missing = [t for t in targets if not any(name == t or name.endswith("." + t) for name in names)]
    if missing:
        raise ValueError(
            f"LoRA target(s) {missing} are not modules of the language model ({type(skeleton).__name__}). Its "
            f"linear layers are {linear}; set `lora.target_modules` to some of these (or `all-linear`)."
        )


# -------------------------------------------------------------------------------------------------- running
@dataclass
class StageResult:
    name: str
    objective: str
    steps: int
    seconds: float
    trainable_parameters: int
    train_loss: float | None
    eval_loss: float | None
    metrics: dict
    cpu_seconds: float | None = None  # None in records written before it was measured


class Curriculum:
    """Runs the checked stages of a `CurriculumConfig`, one `VoxLMTrainer` per stage."""

    def __init__(self, config: CurriculumConfig, resume: str | None = None, overwrite: bool = False):
        self.config = config
        self.state = distributed_state()
        self.tasks = build_tasks(config.tasks)
        self.resume = resume
        self.plans = plan_stages(config, self.tasks, model_has_lora=_pretrained_has_lora(config.model))
        self._check_output_dir(overwrite)
        self.sources = self._load_sources()
        initial = os.path.join(config.output_dir, INITIAL_FOLDER)
        self.initial_folder = prepare_model_folder(config.model, initial, config.seed)
        self._check_model()
        self.results: list[StageResult] = []

    # ------------------------------------------------------------------ checks before training
    def _stage_dir(self, index: int) -> str:
        return os.path.join(self.config.output_dir, f"{index + 1:02d}-{self.config.stages[index].name}")

    def _done_path(self, index: int) -> str:
        """Written when a stage has saved its model: a resumed run skips the stage."""
        return os.path.join(self._stage_dir(index), STAGE_DONE)

    def _check_output_dir(self, overwrite: bool) -> None:
        folder = self.config.output_dir
        ours = {INITIAL_FOLDER, START_METRICS, self.config.final.folder}
        previous = [
            name for name in (os.listdir(folder) if os.path.isdir(folder) else []) if name in ours or name[:2].isdigit()
        ]
        if previous and overwrite:
            if self.state.is_main_process:
                for name in previous:
                    path = os.path.join(folder, name)
                    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            self.state.wait_for_everyone()
        elif previous and self.resume is None:
            raise ValueError(
                f"{folder} holds a previous run. Pass --resume_from_checkpoint to continue it, "
                "--overwrite_output_dir to start over, or choose another `output_dir`."
            )

    def _load_sources(self) -> dict[str, Source]:
        used = {name for plan in self.plans for name in [*plan.weights, *plan.spec.eval_datasets]}
        used |= set(self._generation_datasets())
        sources = {}
        with self.state.main_process_first():  # `datasets` caches derived files: let one process write them
            for name in sorted(used):
                spec = self.config.datasets[name]
                task = get_task(self.tasks, spec.task)
                dataset = load_dataset_spec(spec)
                spec.require_columns(dataset, task.required_columns)
                sources[name] = Source(spec, dataset, task, spec.weight)
        return sources

    def _check_model(self) -> None:
        from voxlm.modeling import VoxLMConfig

        model_config = VoxLMConfig.from_pretrained(self.initial_folder)
        if model_config.llm_lora:  # the starting model has LoRA already: recheck the order with that in mind
            self.plans = plan_stages(self.config, self.tasks, model_has_lora=True)
        for plan in self.plans:
            if plan.lora is not None:
                check_lora_targets(model_config.text_config, plan.lora)
        self.is_encoder_decoder = bool(model_config.is_encoder_decoder)
        if self.config.prompt_format is None:
            from voxlm.processing import VoxLMProcessor

            processor = VoxLMProcessor.from_pretrained(self.initial_folder)
            chat = bool(processor.tokenizer.chat_template) and not self.is_encoder_decoder
            self.config.prompt_format = "chat" if chat else "plain"

    # ------------------------------------------------------------------------------- stages
    def run(self) -> str:
        """Train every stage (skipping those a resumed run already finished) and save the final model."""
        folder = self.initial_folder
        start_index = self._resume_stage_index()
        if os.path.isfile(self._start_path()):
            with open(self._start_path()) as handle:
                self.results.append(StageResult(**json.load(handle)))
        for index, plan in enumerate(self.plans):
            stage_dir, done = self._stage_dir(index), self._done_path(index)
            if os.path.isfile(done):
                with open(done) as handle:
                    self.results.append(StageResult(**json.load(handle)))
                logger.warning(f"Stage {index + 1} {plan.spec.name!r} finished in a previous run: skipping it.")
            else:
                resume = self._checkpoint_for(index, start_index)
                self.results.append(self._run_stage(index, plan, folder, stage_dir, resume))
                self._print_summary(f"after stage {index + 1}/{len(self.plans)} {plan.spec.name!r}")
            folder = os.path.join(stage_dir, "model")
        return self._save_final(folder)

    def _resume_stage_index(self) -> int | None:
        """With an explicit checkpoint path, the stage it belongs to (earlier stages must be finished)."""
        if self.resume in (None, "latest"):
            return None
        checkpoint = os.path.abspath(self.resume)
        if not os.path.isfile(os.path.join(checkpoint, "trainer_state.json")):
            raise ValueError(f"--resume_from_checkpoint {self.resume} is not a complete Trainer checkpoint folder.")
        for index in range(len(self.plans)):
            if os.path.dirname(checkpoint) == os.path.abspath(self._stage_dir(index)):
                unfinished = [i + 1 for i in range(index) if not os.path.isfile(self._done_path(i))]
                if unfinished:
                    raise ValueError(
                        f"--resume_from_checkpoint {self.resume} belongs to stage {index + 1}, but stage(s) "
                        f"{unfinished} before it never finished; resume without a path to continue from those."
                    )
                return index
        raise ValueError(
            f"--resume_from_checkpoint {self.resume} is not a checkpoint of this run's stages "
            f"({[self._stage_dir(i) for i in range(len(self.plans))]}); pass it without a path to resume the latest."
        )

    def _checkpoint_for(self, index: int, start_index: int | None) -> str | None:
        if self.resume is None:
            return None
        if start_index is not None:
            return os.path.abspath(self.resume) if index == start_index else None
        return last_complete_checkpoint(self._stage_dir(index), self.state.num_processes)

    def _run_stage(self, index: int, plan: StagePlan, folder: str, stage_dir: str, resume: str | None) -> StageResult:
        from voxlm.modeling import VoxLMForConditionalGeneration
        from voxlm.processing import VoxLMProcessor

        stage, config = plan.spec, self.config
        seed = config.seed + index
        self._banner(index, plan, resume)
        model = VoxLMForConditionalGeneration.from_pretrained(folder)
        processor = VoxLMProcessor.from_pretrained(folder)
        if plan.lora is not None:
            set_seed(seed)  # the same LoRA initialisation on every process and in a resumed run
            lora = plan.lora
            model.add_lora(lora.r, lora.alpha, lora.dropout, lora.target_modules, speech_only=lora.speech_only)
        trainable = set_trainable(model, plan.train)
        train_data, sampler = self._train_data(plan, processor, model.config, seed)
        eval_mixture = (
            TaskMixture([self.sources[name] for name in stage.eval_datasets], seed=seed)
            if stage.eval_datasets
            else None
        )
        generation = self._generation_evaluator(processor, self._generation_datasets())
        first = index == 0 and config.evaluation.before_first_stage and not os.path.isfile(self._start_path())
        if first and generation is not None:
            self.results.append(self._starting_point(model, generation))
        if stage.objective == "ctc":
            if sharded_engine() is not None:
                raise ValueError(
                    f"Stage {stage.name!r}: the CTC warm-up runs under DDP or in one process, not under "
                    f"{sharded_engine()} (its wrapper model keeps only the trainable tensors in its checkpoints); "
                    "run the CTC stage as a recipe of its own, launched without the FSDP/DeepSpeed config file."
                )
            trainer_model = CTCAlignmentModel(model, vocabulary=plan.spec.ctc_vocabulary)
            collator, label_names = CTCCollator(processor), ["ctc_labels"]
        else:
            collator = SpeechTaskCollator(
                processor, model.config.is_encoder_decoder, config.prompt_format, config.system_prompt
            )
            trainer_model, label_names = model, ["labels"]
        callbacks = [load_callback(path) for path in config.callbacks]
        if stage.early_stopping_patience is not None:
            callbacks.append(EarlyStoppingCallback(stage.early_stopping_patience, stage.early_stopping_threshold))
        trainer = VoxLMTrainer(
            model=trainer_model,
            args=self._training_arguments(stage, stage_dir, seed, label_names, eval_mixture is not None),
            train_dataset=train_data,
            eval_dataset=eval_mixture,
            data_collator=collator,
            processing_class=processor,
            train_batch_sampler=sampler,
            callbacks=callbacks,
            generation_evaluator=self._generation_evaluator(processor, stage.eval_datasets)
            if config.evaluation.during_training
            else None,
        )
        clock = TrainingClock(resume)  # a resumed stage adds the time recorded in its checkpoint
        trainer.add_callback(clock)
        output = trainer.train(resume_from_checkpoint=resume)
        eval_loss = trainer.evaluate()["eval_loss"] if eval_mixture is not None else None
        metrics = generation(model, self.state) if generation is not None else {}
        elapsed = clock.elapsed()  # once, so that wall and CPU time describe the same span
        result = StageResult(
            name=stage.name,
            objective=stage.objective,
            steps=trainer.state.global_step,
            seconds=elapsed["seconds"],
            trainable_parameters=trainable,
            train_loss=output.training_loss,
            eval_loss=eval_loss,
            metrics=metrics,
            cpu_seconds=elapsed["cpu_seconds"],
        )
        if trainer_model is model:
            trainer.save_trained_model(os.path.join(stage_dir, "model"))  # every process: FSDP/DeepSpeed gather
        elif trainer.is_world_process_zero():
            model.save_pretrained(os.path.join(stage_dir, "model"))
            processor.save_pretrained(os.path.join(stage_dir, "model"))
        if trainer.is_world_process_zero():
            with open(os.path.join(stage_dir, STAGE_DONE), "w") as handle:
                json.dump(asdict(result), handle, indent=2)
            if not config.keep_checkpoints:
                for name in os.listdir(stage_dir):
                    if name.startswith("checkpoint-"):
                        shutil.rmtree(os.path.join(stage_dir, name))
        self.state.wait_for_everyone()
        if trainer.is_deepspeed_enabled:
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            # The stage's Trainer told transformers that ZeRO-3 is on, which makes `from_pretrained` build models
            # partitioned, collectively: the next stage (whose Trainer sets it again) and the final model, loaded
            # by the main process alone, must load whole, as the first stage's model did.
            unset_hf_deepspeed_config()
        return result

    def _weighted(self, name: str, weight: float) -> Source:
        """A training source: its stage weight, and its augmentation (its own `augment:`, else the recipe's)."""
        from voxlm.train.core.augment import AugmentSpec

        source = self.sources[name]
        settings = source.spec.augment if source.spec.augment is not None else self.config.augment
        augment = AugmentSpec.from_dict(settings) if settings else None
        return Source(source.spec, source.dataset, source.task, weight, augment)

    def _train_data(self, plan: StagePlan, processor, model_config, seed: int):
        """The stage's training data and batch sampler: a weighted `TaskMixture` with budgeted length-grouped
        batches, or, when a data set is streamed, a weighted stream grouped into budgeted batches on the fly."""
        batching = self.config.batching
        sources = [self._weighted(name, weight) for name, weight in plan.weights.items()]
        positions_per_second = model_config.audio_positions_per_second
        if not any(source.spec.streaming for source in sources):
            mixture = TaskMixture(sources, seed=seed, examples_per_epoch=plan.spec.examples_per_epoch)
            costs, _ = example_costs(mixture, batching, processor, positions_per_second)
            sampler = BudgetBatchSampler.from_spec(batching, costs, seed, mixture.epoch_indices)
            return mixture, sampler
        streams = [
            source
            if source.spec.streaming
            else Source(source.spec, source.dataset.to_iterable_dataset(), source.task, source.weight)
            for source in sources
        ]
        mixture = StreamingTaskMixture(
            streams, seed=seed, rank=self.state.process_index, world_size=self.state.num_processes
        )
        return BudgetBatchedStream.from_spec(batching, mixture, seed, processor, positions_per_second), None

    def _generation_datasets(self) -> list[str]:
        """The data sets answered by generation at the start and after every stage."""
        if self.config.evaluation.datasets is not None:
            return list(self.config.evaluation.datasets)
        return list(dict.fromkeys(name for stage in self.config.stages for name in stage.eval_datasets))

    def _generation_evaluator(self, processor, names: list[str]) -> GenerationEvaluator | None:
        evaluation = self.config.evaluation
        if not names or evaluation.examples <= 0:
            return None
        # Prompts are drawn with the curriculum's seed, not the stage's: every stage answers the same questions.
        mixture = TaskMixture([self.sources[name] for name in names], seed=self.config.seed)
        return GenerationEvaluator(
            processor=processor,
            examples=examples_from_mixture(mixture, evaluation.examples),
            tasks=self.tasks,
            prompt_format=self.config.prompt_format,
            system_prompt=self.config.system_prompt,
            batch_size=evaluation.batch_size,
            max_new_tokens=evaluation.max_new_tokens,
        )

    def _start_path(self) -> str:
        return os.path.join(self.config.output_dir, START_METRICS)

    def _starting_point(self, model, generation: GenerationEvaluator) -> StageResult:
        """Generation metrics of the starting model (kept in `start.json` for the tables of resumed runs)."""
        result = StageResult("start", "-", 0, 0.0, 0, None, None, generation(model, self.state))
        if self.state.is_main_process:
            os.makedirs(self.config.output_dir, exist_ok=True)
            with open(self._start_path(), "w") as handle:
                json.dump(asdict(result), handle, indent=2)
        self.state.wait_for_everyone()
        return result

    def _training_arguments(
        self, stage: StageSpec, stage_dir: str, seed: int, label_names: list[str], has_eval: bool
    ) -> TrainingArguments:
        settings = {
            "learning_rate": 1e-4,
            "logging_steps": 10,
            "save_steps": 100,
            "save_total_limit": 2,
            "eval_steps": 100,
            "report_to": "none",
            "dataloader_num_workers": 0,
            "dataloader_pin_memory": torch.cuda.is_available(),
            "per_device_eval_batch_size": 8,
            **self.config.training,
            **stage.training,
        }
        fixed = {
            "output_dir": stage_dir,
            "seed": seed,
            "max_steps": stage.max_steps,
            "remove_unused_columns": False,
            "ddp_find_unused_parameters": False,
            "prediction_loss_only": True,
            "label_names": label_names,
            "eval_strategy": "steps" if has_eval else "no",
            "save_strategy": "steps",
            "use_cpu": use_cpu(),
        }
        if stage.num_train_epochs is not None:
            fixed["num_train_epochs"] = stage.num_train_epochs
        if stage.early_stopping_patience is not None:
            fixed.update(load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False)
            settings["save_steps"] = settings["eval_steps"]  # the best checkpoint must exist to be restored
        clash = sorted((set(self.config.training) | set(stage.training)) & set(fixed))
        if clash:
            raise ValueError(
                f"Stage {stage.name!r}: training settings {clash} are set by the curriculum; use the stage keys "
                "(max_steps, num_train_epochs, eval_datasets, early_stopping_patience) or remove them."
            )
        return TrainingArguments(**settings, **fixed)

    # ------------------------------------------------------------------------------- output
    def _save_final(self, folder: str) -> str:
        from voxlm.hub_cards import save_run
        from voxlm.modeling import VoxLMForConditionalGeneration
        from voxlm.processing import VoxLMProcessor

        final = os.path.join(self.config.output_dir, self.config.final.folder)
        if self.state.is_main_process:
            model = VoxLMForConditionalGeneration.from_pretrained(folder)
            if self.config.final.merge_lora:
                model.merge_lora()
            save_run(final, model, VoxLMProcessor.from_pretrained(folder), self._run_info())
            with open(os.path.join(final, "training_summary.json"), "w") as handle:
                json.dump(
                    {"stages": [asdict(r) for r in self.results], "config": _jsonable(self.config)}, handle, indent=2
                )
            logger.warning(f"Saved the final model (Hub-ready run folder for `voxlm push`) to {final}.")
        self.state.wait_for_everyone()
        return final

    def _run_info(self):
        """What the model card needs to know about this run (`voxlm.hub_cards.RunInfo`)."""
        from voxlm.hub_cards import RunInfo, describe_hardware

        config, spec = self.config, self.config.model
        trained = [result for result in self.results if result.name != "start"]
        stages = []
        for plan, result in zip(self.plans, trained):
            stages.append(
                {
                    "name": plan.spec.name,
                    **(
                        {"description": "CTC alignment warm-up (VoxLM addition)"}
                        if plan.spec.objective == "ctc"
                        else {}
                    ),
                    "trained": plan.train,
                    "tasks": sorted({config.datasets[name].task for name in plan.weights}),
                    "steps": result.steps,
                    "trainable_parameters": result.trainable_parameters,
                }
            )
        last = trained[-1].metrics if trained else {}
        metrics = [
            card_metric(scores["task"], self.tasks[scores["task"]].metric_key, scores, name)
            for name, scores in sorted(last.items())
            if self.tasks[scores["task"]].metric_key in scores
        ]
        used = sorted({name for plan in self.plans for name in plan.weights})
        values = {
            "kind": "voxlm",
            "recipe": "speechverse",
            "base_models": {"audio": spec.audio_model, "text": spec.text_model} if spec.audio_model else {},
            "stages": stages,
            "datasets": [
                {"id": config.datasets[n].path, "split": config.datasets[n].split, "description": n} for n in used
            ],
            "metrics": metrics,
            "training": {
                "seconds": round(sum(r.seconds for r in trained)),
                **(
                    {"cpu_seconds": round(sum(r.cpu_seconds for r in trained))}
                    if all(r.cpu_seconds is not None for r in trained)
                    else {}
                ),  # fmt: skip
                "hardware": describe_hardware(),
                "seed": config.seed,
                "processes": self.state.num_processes,
            },
            "trainable_parameters": max((r.trainable_parameters for r in trained), default=None),
            "instruction": self.tasks["asr"].prompts[0],
            **config.final.run_info,
        }
        return RunInfo(**values)

    def _banner(self, index: int, plan: StagePlan, resume: str | None) -> None:
        if self.state.is_main_process:
            data = ", ".join(f"{name} x{weight:g}" for name, weight in plan.weights.items())
            how = f", resuming from {resume}" if resume else ""
            print(
                f"\n=== Stage {index + 1}/{len(self.plans)} {plan.spec.name!r} ({plan.spec.objective}): trains "
                f"{'+'.join(plan.train)} on {data}{how}",
                flush=True,
            )

    def _print_summary(self, title: str) -> None:
        if self.state.is_main_process:
            print(f"\nSummary {title}\n{summary_table(self.results, self.tasks)}\n", flush=True)


def _pretrained_has_lora(spec: ModelSpec) -> bool:
    """Whether a `model.pretrained` starting model carries LoRA already (read from its config only), so that its
    stages may train `lora` without adding it; any doubt is settled by `Curriculum._check_model` once it is loaded."""
    if not spec.pretrained:
        return False
    from voxlm.modeling import VoxLMConfig

    try:
        return bool(VoxLMConfig.from_pretrained(spec.pretrained).llm_lora)
    except (OSError, ValueError):
        return False


def set_trainable(model, parts: list[str]) -> int:
    """Freeze everything, then unfreeze `parts`; returns the number of trainable parameters."""
    model.requires_grad_(False)
    if "adapter" in parts:
        model.projector.requires_grad_(True)
    if "layer_mix" in parts and model.layer_mix is not None:
        model.layer_mix.requires_grad_(True)
    if "audio_encoder" in parts:
        model.audio_tower.requires_grad_(True)
    if "language_model" in parts:
        model.language_model.requires_grad_(True)
    for name, parameter in model.language_model.named_parameters():
        if "lora_" in name:
            parameter.requires_grad_("lora" in parts)
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def card_metric(task: str, key: str, scores: dict, dataset_name: str) -> dict:
    """A `run_info.json` metric; rates in [0, 1] (WER, accuracy, F1) are given in percent, as model cards do."""
    value = scores[key]
    percent = key in ("wer", "cer", "accuracy", "macro_f1", "f1", "precision", "recall", "exact_match")
    return {
        "task": task,
        "metric": key,
        "metric_name": f"{key.upper() if key in ('wer', 'cer') else key} (%)" if percent else key,
        "value": round(100 * value, 2) if percent else round(value, 2),
        "dataset_name": dataset_name,
    }


def summary_table(results: list[StageResult], tasks: dict) -> str:
    """One row per stage: steps, time, trainable parameters, losses and each eval data set's headline metric."""
    columns = {}  # data set -> its task's headline metric
    for result in results:
        for name, scores in result.metrics.items():
            columns[name] = tasks[scores["task"]].metric_key
    header = ["stage", "objective", "steps", "seconds", "trainable", "train loss", "eval loss"]
    header += [f"{name} {key}" for name, key in columns.items()]
    rows = []
    for result in results:
        row = [
            result.name,
            result.objective,
            str(result.steps),
            f"{result.seconds:.0f}",
            f"{result.trainable_parameters:,}",
            result.train_loss,
            result.eval_loss,
        ]
        row += [result.metrics.get(name, {}).get(key) for name, key in columns.items()]
        rows.append(row)
    return render_table(header, rows)


def _jsonable(config: CurriculumConfig) -> dict:
    return json.loads(json.dumps(asdict(config), default=str))


def load_callback(path: str):
    """A `TrainerCallback` from `"package.module:ClassName"` (instantiated without arguments)."""
    module_name, _, class_name = path.partition(":")
    if not class_name:
        raise ValueError(f"callbacks: {path!r} must look like 'package.module:ClassName'.")
    return getattr(importlib.import_module(module_name), class_name)()


# ------------------------------------------------------------------------------------------------------ CLI
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="accelerate launch -m voxlm.train.curriculum",
        description="SpeechVerse-style multitask curriculum training of a VoxLM model (see train/configs/).",
    )
    parser.add_argument("--config", required=True, help="the recipe YAML")
    parser.add_argument(
        "--resume_from_checkpoint",
        nargs="?",
        const="latest",
        default=None,
        help="continue a stopped run: without a value from the newest complete checkpoint of the first unfinished "
        "stage, or from the given stage checkpoint folder",
    )
    parser.add_argument("--overwrite_output_dir", action="store_true", help="delete a previous run's stages first")
    parser.add_argument("--output_dir", help="override the config's output_dir")
    parser.add_argument("--check", action="store_true", help="check the config, data and model, then exit")
    return parser.parse_args(argv)


def main(argv=None) -> str | None:
    args = parse_args(argv)
    logging.set_verbosity_warning()
    config = CurriculumConfig.from_yaml(args.config, {"output_dir": args.output_dir})
    curriculum = Curriculum(config, resume=args.resume_from_checkpoint, overwrite=args.overwrite_output_dir)
    if args.check:
        if curriculum.state.is_main_process:
            print(f"{args.config}: {len(curriculum.plans)} stage(s) checked; data sets and model are usable.")
        return None
    return curriculum.run()


if __name__ == "__main__":
    main(sys.argv[1:])
