"""transformers `Trainer` for VoxLM recipes: budgeted length-grouped batches that survive DDP and resumption.

[`VoxLMTrainer`] is `Trainer` with one addition: `train_batch_sampler=` (a `batching.BudgetBatchSampler`) replaces
its fixed-size batches, or a `batching.BudgetBatchedStream` as `train_dataset` gives already-grouped batches from
a stream. Everything else (optimizer, schedules, checkpoints, `resume_from_checkpoint`, logging, DDP, FSDP and
DeepSpeed via accelerate) is `Trainer`'s own; `save_trained_model` writes a self-contained folder under any engine.
"""

import json
import math
import os
import time
from collections.abc import Callable

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from .batching import BudgetBatchedStream, BudgetBatchSampler

logger = logging.get_logger(__name__)


class SamplerEpochCallback(TrainerCallback):
    """Sets the batch sampler's epoch when an epoch begins.

    `Trainer` reaches a batch sampler's `set_epoch` only on a fresh epoch: when a run resumes mid-epoch,
    accelerate's `skip_first_batches` wraps the sampler and hides it. The epoch is recomputed here from the global
    step, the same way `Trainer` decides which epoch to resume in, so a resumed run replays the same batches.
    """

    def __init__(self, sampler: BudgetBatchSampler, gradient_accumulation_steps: int = 1, dataset=None):
        self.sampler = sampler
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.dataset = dataset  # told the epoch too, when it can use it (fresh augmentation every epoch)

    def on_epoch_begin(self, args, state, control, **kwargs):
        steps_per_epoch = max(math.ceil(len(self.sampler) / self.gradient_accumulation_steps), 1)
        epoch = state.global_step // steps_per_epoch
        self.sampler.set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


CLOCK_FILE = "training_clock.json"


class TrainingClock(TrainerCallback):
    """Wall and CPU time of one training, carried through its checkpoints: a run stopped and resumed any number of
    times reports its whole cost, not that of its last piece. CPU time is this process's (all its threads).

    Args:
        resume_from (`str`, *optional*): the checkpoint the training resumes from; its recorded time is added.
    """

    def __init__(self, resume_from: str | None = None):
        self.before = {"seconds": 0.0, "cpu_seconds": 0.0}
        recorded = os.path.join(resume_from, CLOCK_FILE) if isinstance(resume_from, str) else None
        if recorded and os.path.isfile(recorded):
            with open(recorded) as handle:
                self.before = json.load(handle)
        self.started = (time.time(), time.process_time())

    def elapsed(self) -> dict[str, float]:
        """`{"seconds", "cpu_seconds"}` since the training first started, across resumptions."""
        return {
            "seconds": round(self.before["seconds"] + time.time() - self.started[0], 1),
            "cpu_seconds": round(self.before["cpu_seconds"] + time.process_time() - self.started[1], 1),
        }

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if state.is_world_process_zero and os.path.isdir(folder):
            with open(os.path.join(folder, CLOCK_FILE), "w") as handle:
                json.dump(self.elapsed(), handle)


class VoxLMTrainer(Trainer):
    """`Trainer` whose training batches come from a budgeted, length-grouped batch sampler.

    Args:
        train_batch_sampler (`BudgetBatchSampler`, *optional*): batches of indices into `train_dataset`. Its
            `num_replicas`/`rank` are set from the accelerator, so every process gets its own batches (and the
            same number of them); `per_device_train_batch_size` is then unused.
        generation_evaluator (`evaluate.GenerationEvaluator`, *optional*): run at every evaluation; its per-task
            metrics are logged as `eval_<task>_<metric>`.
        *args, **kwargs: as for `Trainer`. Examples are dicts the collator turns into model inputs, so
            `remove_unused_columns` is turned off.

    A `train_dataset` that is a `BudgetBatchedStream` yields lists of examples and is loaded with
    `batch_size=None`; each process must read its own shard (see `data.StreamingTaskMixture`).
    """

    def __init__(
        self,
        *args,
        train_batch_sampler: BudgetBatchSampler | None = None,
        generation_evaluator: Callable | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.generation_evaluator = generation_evaluator
        if self.args.remove_unused_columns:
            # Trainer would strip the raw example fields (audio, instruction, target) before the collator sees them.
            self.args.remove_unused_columns = False
        self.train_batch_sampler = train_batch_sampler
        if train_batch_sampler is not None:
            train_batch_sampler.num_replicas = max(1, self.args.world_size)
            train_batch_sampler.rank = self.args.process_index if self.args.world_size > 1 else 0
            self.add_callback(
                SamplerEpochCallback(train_batch_sampler, self.args.gradient_accumulation_steps, self.train_dataset)
            )

    def _loader_kwargs(self) -> dict:
        return {
            "collate_fn": self.data_collator,
            "num_workers": self.args.dataloader_num_workers,
            "pin_memory": self.args.dataloader_pin_memory and torch.cuda.is_available(),
            "persistent_workers": self.args.dataloader_persistent_workers and self.args.dataloader_num_workers > 0,
        }

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        if isinstance(self.train_dataset, BudgetBatchedStream):
            # Already grouped into batches and sharded per process: no accelerate re-sharding.
            return torch.utils.data.DataLoader(self.train_dataset, batch_size=None, **self._loader_kwargs())
        if self.train_batch_sampler is None:
            return super().get_train_dataloader()
        loader = torch.utils.data.DataLoader(
            self.train_dataset, batch_sampler=self.train_batch_sampler, **self._loader_kwargs()
        )
        loader = self.accelerator.prepare(loader)
        # The sampler is rank-aware already: make accelerate's shard wrapper a pass-through, as Trainer does for
        # its own rank-aware `BatchRebalanceSampler`.
        shard = getattr(loader, "batch_sampler", None)
        if shard is not None and getattr(shard, "batch_sampler", None) is self.train_batch_sampler:
            shard.num_processes, shard.process_index = 1, 0
        return loader

    @property
    def shards_parameters(self) -> bool:
        """Whether every process holds only a shard of the parameters (FSDP, DeepSpeed ZeRO-3): the model must then
        be gathered to be saved, and run on every process together."""
        if self.is_fsdp_enabled:
            return True
        if not self.is_deepspeed_enabled:
            return False
        return self.accelerator.deepspeed_config["zero_optimization"].get("stage", 0) == 3

    def save_trained_model(self, folder: str) -> None:
        """Save the trained VoxLM model with its processor as a self-contained folder; call it on every process.

        Under FSDP and DeepSpeed the full state dict is gathered first (accelerate's `get_state_dict`, as
        `Trainer.save_model` does), and the main process writes the same folder as a single process would: every
        weight, the processor and VoxLM's code files.
        """
        state_dict = None
        if self.is_fsdp_enabled or self.is_deepspeed_enabled:
            state_dict = self.accelerator.get_state_dict(self.deepspeed if self.is_deepspeed_enabled else self.model)
        if self.accelerator.is_main_process:
            model = self.accelerator.unwrap_model(self.model)
            model.save_pretrained(folder, state_dict=state_dict)
            self.processing_class.save_pretrained(folder)
        self.accelerator.wait_for_everyone()

    def _issue_warnings_after_load(self, load_result) -> None:
        """Trainer warns about every key missing from a loaded checkpoint; tied weights (an LLM's output layer
        sharing the input embeddings) are never saved twice, so they are left out of that warning."""
        model = self.accelerator.unwrap_model(self.model)
        parameters = dict(model.named_parameters(remove_duplicate=False))
        loaded = {id(parameters[name]) for name in parameters if name not in set(load_result.missing_keys)}
        tied = [name for name in load_result.missing_keys if name in parameters and id(parameters[name]) in loaded]
        if tied:
            load_result = type(load_result)(
                [name for name in load_result.missing_keys if name not in tied], load_result.unexpected_keys
            )
        super()._issue_warnings_after_load(load_result)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """`Trainer.evaluate` (the loss), plus generation metrics per task when a generation evaluator is set."""
        metrics = {}
        if eval_dataset is not None or self.eval_dataset is not None:
            metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if self.generation_evaluator is not None:
            from .evaluate import flat_metrics

            model = self.accelerator.unwrap_model(self.model)
            generated = flat_metrics(
                self.generation_evaluator(getattr(model, "voxlm", model), self.accelerator), metric_key_prefix
            )
            self.log(generated)
            metrics.update(generated)
        return metrics


def _checkpoint_step(name: str) -> int:
    return int(name.rsplit("-", 1)[-1])


def last_complete_checkpoint(folder: str, world_size: int = 1) -> str | None:
    """The newest `checkpoint-N` in `folder` whose saving finished (`trainer_state.json` and every rank's RNG state
    present); a run killed while saving leaves a partial folder that must not be resumed from."""
    if not os.path.isdir(folder):
        return None
    candidates = [
        name
        for name in os.listdir(folder)
        if name.startswith(PREFIX_CHECKPOINT_DIR + "-") and name.rsplit("-", 1)[-1].isdigit()
    ]
    for name in sorted(candidates, key=_checkpoint_step, reverse=True):
        path = os.path.join(folder, name)
        if not os.path.isfile(os.path.join(path, "trainer_state.json")):
            continue
        rng_files = [f"rng_state_{rank}.pth" for rank in range(world_size)] if world_size > 1 else ["rng_state.pth"]
        if all(os.path.isfile(os.path.join(path, file)) for file in rng_files):
            return path
    return None


__all__ = ["SamplerEpochCallback", "TrainingClock", "VoxLMTrainer", "last_complete_checkpoint"]
