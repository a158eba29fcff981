"""Length-grouped batching under a budget of padded audio seconds and/or tokens.

A batch of `B` examples whose longest member costs `c_max` occupies `B * c_max` once padded. Examples are shuffled,
sorted by cost inside windows of `sort_window` examples and cut greedily into batches that keep `B * c_max` within
the budget, so short clips travel in large batches, long clips in small ones, and padding stays small. The batches
are then shuffled. Everything is seeded by `(seed, epoch)`, so a resumed run sees the same batches.

- [`BudgetBatchSampler`]: a batch sampler for map-style data sets (`DataLoader(batch_sampler=...)`), rank-aware for
  DDP: every process gets its own batches and all processes get the same number of them.
- [`budget_batches`] / [`BudgetBatchedStream`]: the same grouping for an endless stream of examples, with a
  buffer of `buffer_size` examples.
- [`BatchingSpec`] (the budgets as a recipe writes them) and [`example_costs`] / [`ExampleCost`]: what each example
  costs, in audio seconds and/or estimated language-model positions.

transformers' `LengthGroupedSampler` and `BatchRebalanceSampler` group by length at a fixed number of examples per
batch; a budget in seconds or tokens is what keeps memory flat when clip lengths vary 10x, hence this module.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers.utils import logging

from .audio import SAMPLING_RATE

logger = logging.get_logger(__name__)


# ------------------------------------------------------------------------------------------ budgets and costs
@dataclass
class BatchingSpec:
    """Budgeted length-grouped batches (see [`BudgetBatchSampler`]).

    `max_seconds`: padded audio seconds per batch (batch size x longest clip); `max_tokens`: padded language-model
    positions per batch (audio positions + prompt + target, estimated); either or both. `max_batch_size` caps the
    number of examples; `sort_window` is how many shuffled examples are sorted together.
    """

    max_seconds: float | None = 120.0
    max_tokens: int | None = None
    max_batch_size: int | None = 64
    sort_window: int | None = 1000
    drop_last: bool = False

    def __post_init__(self):
        if self.max_seconds is None and self.max_tokens is None:
            raise ValueError("batching: set `max_seconds` and/or `max_tokens` (the padded budget of one batch).")

    @property
    def budget(self) -> np.ndarray:
        """The budget of each cost column: seconds, then tokens (those that are set)."""
        return np.array([b for b in (self.max_seconds, self.max_tokens) if b is not None], dtype=np.float64)


def estimated_tokens(seconds, target_tokens, positions_per_second: float, prompt_tokens: int = 32):
    """Language-model positions of an example: its audio positions, the prompt and the target (+ EOS)."""
    return seconds * positions_per_second + prompt_tokens + target_tokens + 1


def _check_token_inputs(spec: BatchingSpec, processor, positions_per_second) -> None:
    if spec.max_tokens is not None and (processor is None or positions_per_second is None):
        raise ValueError("A `max_tokens` budget needs the processor and the model's audio positions per second.")


def example_costs(
    examples, spec: BatchingSpec, processor=None, positions_per_second: float | None = None, prompt_tokens: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Per-example costs `(n, k)` and budgets `(k,)` under `spec` (seconds, then tokens) of a map-style data set
    that knows its examples' `seconds` (an array) and `target_texts()` (e.g. `data.TaskMixture`)."""
    _check_token_inputs(spec, processor, positions_per_second)
    columns = []
    if spec.max_seconds is not None:
        columns.append(examples.seconds)
    if spec.max_tokens is not None:
        encoded = processor.tokenizer(examples.target_texts(), add_special_tokens=False)["input_ids"]
        target_tokens = np.array([len(ids) for ids in encoded])
        columns.append(estimated_tokens(examples.seconds, target_tokens, positions_per_second, prompt_tokens))
    return np.stack(columns, axis=1), spec.budget


class ExampleCost:
    """The cost of one example dict from a stream, as `example_costs` computes it for map-style data."""

    def __init__(
        self,
        spec: BatchingSpec,
        processor=None,
        positions_per_second=None,
        prompt_tokens: int = 32,
        sampling_rate: int = SAMPLING_RATE,
    ):
        _check_token_inputs(spec, processor, positions_per_second)
        self.spec, self.processor, self.positions_per_second = spec, processor, positions_per_second
        self.prompt_tokens, self.sampling_rate = prompt_tokens, sampling_rate
        self.budget = spec.budget

    def __call__(self, example: dict) -> list[float]:
        seconds = len(example["audio"]) / self.sampling_rate
        costs = [seconds] if self.spec.max_seconds is not None else []
        if self.spec.max_tokens is not None:
            target = len(self.processor.tokenizer(example["target"], add_special_tokens=False)["input_ids"])
            costs.append(estimated_tokens(seconds, target, self.positions_per_second, self.prompt_tokens))
        return costs


# ------------------------------------------------------------------------------------------------ packing


def pack_sorted(costs: np.ndarray, budget: np.ndarray, max_batch_size: int | None = None) -> list[slice]:
    """Cut `costs` (n, k), sorted by decreasing first column, into consecutive batches within `budget` (k,).

    A batch `[i, j)` is kept while `(j - i) * max(costs[i:j], axis=0) <= budget` in every column (and
    `j - i <= max_batch_size`). An example over budget on its own gets a batch of its own.
    """
    batches, start = [], 0
    running_max = np.zeros(costs.shape[1])
    for position in range(len(costs)):
        candidate = np.maximum(running_max, costs[position])
        size = position - start + 1
        too_big = bool((size * candidate > budget).any()) or (max_batch_size is not None and size > max_batch_size)
        if too_big and size > 1:
            batches.append(slice(start, position))
            start, candidate = position, costs[position].copy()
        running_max = candidate
    if start < len(costs):
        batches.append(slice(start, len(costs)))
    return batches


def group_by_budget(
    indices: np.ndarray,
    costs: np.ndarray,
    budget: np.ndarray,
    rng: np.random.Generator | None,
    max_batch_size: int | None = None,
    sort_window: int | None = None,
) -> list[list[int]]:
    """Shuffle `indices` (if `rng`), sort them by cost inside windows, pack them under `budget`, shuffle batches."""
    if rng is not None:
        indices = rng.permutation(indices)
    window = sort_window or len(indices) or 1
    batches = []
    for start in range(0, len(indices), window):
        chunk = indices[start : start + window]
        chunk = chunk[np.argsort(-costs[chunk, 0], kind="stable")]
        batches += [chunk[part].tolist() for part in pack_sorted(costs[chunk], budget, max_batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _as_costs(costs, budget) -> tuple[np.ndarray, np.ndarray]:
    costs = np.asarray(costs, dtype=np.float64)
    costs = costs[:, None] if costs.ndim == 1 else costs
    budget = np.atleast_1d(np.asarray(budget, dtype=np.float64))
    if budget.shape != (costs.shape[1],):
        raise ValueError(f"Got {costs.shape[1]} cost column(s) but {budget.size} budget value(s); give one each.")
    if (budget <= 0).any():
        raise ValueError(f"Batch budgets must be > 0, got {budget.tolist()}.")
    return costs, budget


class BudgetBatchSampler(torch.utils.data.Sampler):
    """Batches of similar cost whose padded cost stays within a budget; deterministic per seed and epoch.

    Args:
        costs: `(n,)` or `(n, k)` cost of every example of the data set, e.g. audio seconds, or seconds and tokens.
        budget: the padded cost allowed per batch, one value per cost column (e.g. `120.0` seconds).
        max_batch_size: an upper bound on examples per batch.
        indices_for_epoch: `epoch -> indices` of the examples to use in that epoch (e.g.
            `TaskMixture.epoch_indices`, which realises per-task weights); default: every example once.
        seed / shuffle: shuffling of examples and batches, seeded by `(seed, epoch)`.
        sort_window: examples sorted together (the rest of the order stays random); default 1000.
        num_replicas / rank: data-parallel processes. Each rank yields batches `rank, rank + num_replicas, ...`.
            The trainer sets these from its accelerator.
        drop_last: drop the batches that do not fill a last round over all ranks instead of repeating early ones.

    Every epoch has the same number of batches (that of epoch 0: Trainer and DDP need a fixed length). Another
    epoch's packing differs slightly; its surplus batches are dropped or its first batches repeated to match.
    Call `set_epoch(epoch)` before iterating (the trainer's callback does).
    """

    def __init__(
        self,
        costs,
        budget,
        max_batch_size: int | None = None,
        indices_for_epoch: Callable[[int], np.ndarray] | None = None,
        seed: int = 0,
        shuffle: bool = True,
        sort_window: int | None = 1000,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ):
        self.costs, self.budget = _as_costs(costs, budget)
        self.max_batch_size = max_batch_size
        self.indices_for_epoch = indices_for_epoch
        self.seed, self.shuffle, self.sort_window = seed, shuffle, sort_window
        self.num_replicas, self.rank, self.drop_last = num_replicas, rank, drop_last
        self.epoch = 0
        self._num_batches = None
        over = int((self.costs > self.budget).any(axis=1).sum())
        if over:
            logger.warning(
                f"{over} example(s) exceed the batch budget {self.budget.tolist()} alone; each gets a batch."
            )

    @classmethod
    def from_spec(
        cls, spec: BatchingSpec, costs, seed: int = 0, indices_for_epoch: Callable[[int], np.ndarray] | None = None
    ) -> "BudgetBatchSampler":
        """The sampler a recipe's `BatchingSpec` asks for, over examples of `costs` (from `example_costs`)."""
        return cls(
            costs,
            spec.budget,
            max_batch_size=spec.max_batch_size,
            indices_for_epoch=indices_for_epoch,
            seed=seed,
            sort_window=spec.sort_window,
            drop_last=spec.drop_last,
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches of `epoch` over all ranks, before fixing their number."""
        indices = (
            np.asarray(self.indices_for_epoch(epoch))
            if self.indices_for_epoch is not None
            else np.arange(len(self.costs))
        )
        rng = np.random.default_rng([self.seed, epoch]) if self.shuffle else None
        return group_by_budget(indices, self.costs, self.budget, rng, self.max_batch_size, self.sort_window)

    @property
    def num_batches(self) -> int:
        """Batches per epoch over all ranks (fixed to that of epoch 0, then rounded to the ranks)."""
        if self._num_batches is None:
            count = len(self.epoch_batches(0))
            if self.drop_last and count >= self.num_replicas:
                self._num_batches = count - count % self.num_replicas
            else:
                self._num_batches = -(-count // self.num_replicas) * self.num_replicas
        return self._num_batches

    def all_batches(self, epoch: int | None = None) -> list[list[int]]:
        """The epoch's batches over all ranks, exactly `num_batches` of them."""
        batches = self.epoch_batches(self.epoch if epoch is None else epoch)
        if not batches:
            raise ValueError("The batch sampler has no examples to batch.")
        total = self.num_batches
        while len(batches) < total:  # repeat early batches so that every rank gets the same count
            batches += batches[: total - len(batches)]
        return batches[:total]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.all_batches()[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        return self.num_batches // self.num_replicas

    def padding_ratio(self, epoch: int = 0) -> float:
        """Share of padded (wasted) cost in the first cost column over an epoch's batches: 0 is perfect."""
        used = padded = 0.0
        for batch in self.epoch_batches(epoch):
            column = self.costs[batch, 0]
            used, padded = used + column.sum(), padded + len(batch) * column.max()
        return 1.0 - used / padded if padded else 0.0


def budget_batches(
    examples: Iterable,
    cost: Callable[[object], Sequence[float] | float],
    budget,
    max_batch_size: int | None = None,
    buffer_size: int = 1000,
    seed: int = 0,
) -> Iterator[list]:
    """Group a stream of examples into budgeted batches: buffer `buffer_size`, sort, pack, shuffle, yield."""
    budget = np.atleast_1d(np.asarray(budget, dtype=np.float64))
    rng = np.random.default_rng(seed)
    buffer = []

    def flush() -> Iterator[list]:
        costs, _ = _as_costs([np.atleast_1d(cost(example)) for example in buffer], budget)
        batches = group_by_budget(np.arange(len(buffer)), costs, budget, rng, max_batch_size, None)
        for batch in batches:
            yield [buffer[i] for i in batch]

    for example in examples:
        buffer.append(example)
        if len(buffer) >= buffer_size:
            yield from flush()
            buffer = []
    if buffer:
        yield from flush()


class BudgetBatchedStream(torch.utils.data.IterableDataset):
    """An iterable data set of examples, regrouped into budgeted batches (lists of examples).

    Use with `DataLoader(stream, batch_size=None, collate_fn=collator)`; each process should read its own shard
    (as `data.StreamingTaskMixture` does).
    """

    def __init__(self, examples: Iterable, cost: Callable, budget, max_batch_size=None, buffer_size=1000, seed=0):
        self.examples, self.cost, self.budget = examples, cost, budget
        self.max_batch_size, self.buffer_size, self.seed = max_batch_size, buffer_size, seed

    @classmethod
    def from_spec(
        cls, spec: BatchingSpec, examples: Iterable, seed: int = 0, processor=None, positions_per_second=None
    ) -> "BudgetBatchedStream":
        """The stream a recipe's `BatchingSpec` asks for: `examples` (dicts with `audio` and `target`, e.g. from
        `data.StreamingTaskMixture`) costed by [`ExampleCost`] and grouped through a buffer of `sort_window`."""
        cost = ExampleCost(spec, processor, positions_per_second)
        return cls(examples, cost, cost.budget, spec.max_batch_size, spec.sort_window or 1000, seed)

    def __iter__(self) -> Iterator[list]:
        return budget_batches(self.examples, self.cost, self.budget, self.max_batch_size, self.buffer_size, self.seed)


__all__ = [
    "BatchingSpec",
    "BudgetBatchSampler",
    "BudgetBatchedStream",
    "ExampleCost",
    "budget_batches",
    "estimated_tokens",
    "example_costs",
    "group_by_budget",
    "pack_sorted",
]
