"""transformers `Trainer` for VoxLM recipes: budgeted length-grouped batches that survive DDP and resumption.

[`VoxLMTrainer`] is `Trainer` with one addition: `train_batch_sampler=` (a `batching.BudgetBatchSampler`) replaces
its fixed-size batches, or a `batching.BudgetBatchedStream` as `train_dataset` gives already-grouped batches from
a stream. Everything else (optimizer, schedules, checkpoints, `resume_from_checkpoint`, logging, DDP/FSDP via
accelerate) is `Trainer`'s own.
"""

import math
import os

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

    def __init__(self, sampler: BudgetBatchSampler, gradient_accumulation_steps: int = 1):
        self.sampler = sampler
        self.gradient_accumulation_steps = gradient_accumulation_steps

    def on_epoch_begin(self, args, state, control, **kwargs):
        steps_per_epoch = max(math.ceil(len(self.sampler) / self.gradient_accumulation_steps), 1)
        self.sampler.set_epoch(state.global_step // steps_per_epoch)


class VoxLMTrainer(Trainer):
    """`Trainer` whose training batches come from a budgeted, length-grouped batch sampler.

    Args:
        train_batch_sampler (`BudgetBatchSampler`, *optional*): batches of indices into `train_dataset`. Its
            `num_replicas`/`rank` are set from the accelerator, so every process gets its own batches (and the
            same number of them); `per_device_train_batch_size` is then unused.
        *args, **kwargs: as for `Trainer`. Examples are dicts the collator turns into model inputs, so
            `remove_unused_columns` is turned off.

    A `train_dataset` that is a `BudgetBatchedStream` yields lists of examples and is loaded with
    `batch_size=None`; each process must read its own shard (see `data.StreamingTaskMixture`).
    """

    def __init__(self, *args, train_batch_sampler: BudgetBatchSampler | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.args.remove_unused_columns:
            # Trainer would strip the raw example fields (audio, instruction, target) before the collator sees them.
            self.args.remove_unused_columns = False
        self.train_batch_sampler = train_batch_sampler
        if train_batch_sampler is not None:
            train_batch_sampler.num_replicas = max(1, self.args.world_size)
            train_batch_sampler.rank = self.args.process_index if self.args.world_size > 1 else 0
            self.add_callback(SamplerEpochCallback(train_batch_sampler, self.args.gradient_accumulation_steps))

    def _loader_kwargs(self) -> dict:
        return {
            "collate_fn": self.data_collator,
            "num_workers": self.args.dataloader_num_workers,
            "pin_memory": self.args.dataloader_pin_memory,
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


__all__ = ["SamplerEpochCallback", "VoxLMTrainer", "last_complete_checkpoint"]
