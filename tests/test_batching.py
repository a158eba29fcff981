import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxlm.train.core.batching import BudgetBatchSampler, budget_batches, pack_sorted


def padded_costs(costs: np.ndarray, batch: list[int]) -> np.ndarray:
    return len(batch) * costs[batch].max(axis=0)


@settings(max_examples=60, deadline=None)
@given(
    seconds=st.lists(st.floats(0.1, 20.0), min_size=1, max_size=80),
    budget=st.floats(5.0, 60.0),
    max_batch_size=st.one_of(st.none(), st.integers(1, 8)),
)
def test_pack_sorted_keeps_every_batch_within_budget(seconds, budget, max_batch_size):
    costs = np.sort(np.array(seconds))[::-1][:, None]
    batches = pack_sorted(costs, np.array([budget]), max_batch_size)
    covered = np.concatenate([np.arange(len(costs))[part] for part in batches])
    np.testing.assert_array_equal(covered, np.arange(len(costs)))  # consecutive, complete, no repeats
    for part in batches:
        size = part.stop - part.start
        assert size == 1 or size * costs[part].max() <= budget + 1e-9
        assert max_batch_size is None or size <= max_batch_size
        if part.stop < len(costs):  # greedy: the next example would not have fitted
            assert (size + 1) * costs[part.start] > budget or size == max_batch_size


def test_two_cost_columns_are_both_respected():
    costs = np.array([[10.0, 10], [9, 400], [8, 10], [7, 10]])
    batches = pack_sorted(costs, np.array([40.0, 500.0]))
    assert all(padded_costs(costs, list(range(p.start, p.stop))).tolist() <= [40.0, 500.0] for p in batches)
    assert [(p.start, p.stop) for p in batches] == [(0, 1), (1, 2), (2, 4)]


def test_sampler_is_deterministic_per_seed_and_epoch_and_covers_the_data():
    rng = np.random.default_rng(0)
    seconds = rng.uniform(0.5, 15, size=300)
    sampler = BudgetBatchSampler(seconds, budget=60.0, seed=3)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    assert epoch0 == list(BudgetBatchSampler(seconds, budget=60.0, seed=3))
    assert sorted(i for batch in sampler.epoch_batches(0) for i in batch) == list(range(300))
    assert all(padded_costs(seconds[:, None], b)[0] <= 60.0 for b in epoch0 if len(b) > 1)
    sampler.set_epoch(1)
    assert list(sampler) != epoch0 and len(list(sampler)) == len(epoch0) == len(sampler)
    assert list(BudgetBatchSampler(seconds, budget=60.0, seed=4)) != epoch0


def test_length_grouping_wastes_less_than_random_batches():
    seconds = np.random.default_rng(1).uniform(0.5, 15, size=1000)
    sampler = BudgetBatchSampler(seconds, budget=60.0)
    batches = sampler.epoch_batches(0)
    mean_size = round(np.mean([len(b) for b in batches]))
    shuffled = np.random.default_rng(2).permutation(1000)
    random_batches = [shuffled[i : i + mean_size] for i in range(0, 1000, mean_size)]
    random_waste = 1 - sum(seconds[b].sum() for b in random_batches) / sum(
        len(b) * seconds[b].max() for b in random_batches
    )
    assert sampler.padding_ratio(0) < 0.2 * random_waste


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_get_disjoint_batches_and_the_same_count(drop_last):
    seconds = np.random.default_rng(5).uniform(1, 10, size=101)
    ranks = [BudgetBatchSampler(seconds, 30.0, num_replicas=3, rank=r, drop_last=drop_last) for r in range(3)]
    for epoch in (0, 1, 2):
        per_rank = []
        for sampler in ranks:
            sampler.set_epoch(epoch)
            per_rank.append(list(sampler))
        assert len({len(batches) for batches in per_rank}) == 1 and len(per_rank[0]) == len(ranks[0])
        everything = ranks[0].all_batches(epoch)
        for rank, batches in enumerate(per_rank):
            assert batches == everything[rank::3]
        seen = [i for batches in per_rank for batch in batches for i in batch]
        full = ranks[0].epoch_batches(epoch)
        if drop_last:
            assert len(seen) == len(set(seen))  # nothing repeated
        else:
            assert set(seen) == {i for batch in full for i in batch}  # nothing lost


def test_indices_for_epoch_selects_the_examples():
    seconds = np.ones(50)
    sampler = BudgetBatchSampler(seconds, 4.0, indices_for_epoch=lambda epoch: np.arange(10) + 10 * epoch)
    sampler.set_epoch(2)
    assert sorted(i for batch in sampler for i in batch) == list(range(20, 30))
    assert all(len(batch) <= 4 for batch in sampler)


def test_budget_batches_on_a_stream():
    stream = ({"id": i, "seconds": float(1 + i % 7)} for i in range(200))
    batches = list(budget_batches(stream, lambda ex: ex["seconds"], 20.0, buffer_size=64, seed=0))
    assert sorted(ex["id"] for batch in batches for ex in batch) == list(range(200))
    assert all(len(b) * max(ex["seconds"] for ex in b) <= 20.0 for b in batches)


def test_budget_shape_errors():
    with pytest.raises(ValueError, match="2 cost column"):
        BudgetBatchSampler(np.ones((4, 2)), 10.0)
    with pytest.raises(ValueError, match="> 0"):
        BudgetBatchSampler(np.ones(4), 0.0)
