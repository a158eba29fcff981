"""Acceptance: a streamed corpus (local parquet shards standing in for a Hub data set repository) trains in two
processes with budgeted batches, each process reading its own shards, and a run killed mid-epoch and resumed
trains on every example of the epoch exactly once."""

import json
from pathlib import Path

import pytest
import yaml
from curriculum_helpers import TESTS, write_recipe
from tiny_data import tiny_spoken_dataset

from voxlm.train.core.launch import run_accelerate

pytestmark = pytest.mark.slow

ROWS, SHARDS, BATCH = 32, 4, 4  # 2 processes x 2 shards x 8 rows: one epoch is 4 steps of 4 examples per process


def launch(root: Path, log: str, *args: str, env: dict | None = None):
    """The recipe on 2 processes (DDP, gloo), recording every batch each process collates."""
    arguments = ["voxlm.train.curriculum", "--config", str(root / "recipe.yaml"), *args]
    extra = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(TESTS), "VOXLM_TEST_BATCHES": str(root / log), **(env or {})}
    return run_accelerate(
        "record_batches", arguments, 2, cpu=True, env=extra, capture_output=True, text=True, timeout=600
    )


def batches(root: Path, log: str, rank: int) -> list[list[str]]:
    return [json.loads(line) for line in (root / f"{log}.rank{rank}").read_text().splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("streaming")
    rows = tiny_spoken_dataset(ROWS, seed=3)
    rows = rows.map(lambda row, index: {"text": f"{row['text']} {index}"}, with_indices=True)  # unique targets
    (root / "corpus").mkdir()
    for shard in range(SHARDS):
        rows.shard(SHARDS, shard, contiguous=True).to_parquet(str(root / "corpus" / f"train-{shard:05d}.parquet"))
    write_recipe(root, callbacks=["kill_callback:KillAtStep"])
    config = yaml.safe_load((root / "recipe.yaml").read_text())
    config["datasets"] = {"corpus": {"path": str(root / "corpus"), "task": "asr", "streaming": True}}
    config["batching"] = {"max_seconds": 100.0, "max_batch_size": BATCH, "sort_window": ROWS // 2}
    config["training"] = {"learning_rate": 1e-2, "logging_steps": 1, "save_steps": 2}
    config["evaluation"] = {"examples": 0}
    config["stages"] = [{"name": "adapter", "datasets": ["corpus"], "max_steps": ROWS // 2 // BATCH}]
    (root / "recipe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root, sorted(rows["text"])


def test_a_run_killed_mid_epoch_and_resumed_trains_on_every_example_once(corpus):
    root, texts = corpus
    killed = launch(root, "killed", env={"VOXLM_TEST_KILL": "adapter:3"})
    assert killed.returncode != 0  # both processes died after step 3; checkpoint-2 is the newest
    assert (root / "run" / "01-adapter" / "checkpoint-2").is_dir()
    resumed = launch(root, "resumed", "--resume_from_checkpoint")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "checkpoint-2" in resumed.stdout
    trained = []
    for rank in range(2):
        before, after = batches(root, "killed", rank), batches(root, "resumed", rank)
        assert all(len(batch) == BATCH for batch in before + after)
        # The resumed run replays the stream from its start and skips the 2 batches the checkpoint has trained.
        assert after[:3] == before[:3]
        trained += [text for batch in before[:2] + after[2:4] for text in batch]
    assert sorted(trained) == texts  # the whole epoch, each example exactly once, over both processes
