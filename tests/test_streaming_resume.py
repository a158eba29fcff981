"""Acceptance: a streamed corpus (local parquet shards standing in for a Hub data set repository) trains in two
processes with budgeted batches, each process reading its own shards, and a run killed mid-epoch and resumed
trains on every example of the epoch exactly once; for the curriculum and for behaviour alignment (`align train`)."""

import json
from pathlib import Path

import pytest
import yaml
from curriculum_helpers import TESTS, write_recipe
from tiny import tiny_voxlm
from tiny_data import tiny_spoken_dataset

from voxlm.train.core.launch import run_accelerate

pytestmark = pytest.mark.slow

ROWS, SHARDS, BATCH = 32, 4, 4  # 2 processes x 2 shards x 8 rows: one epoch is 4 steps of 4 examples per process
STEPS = ROWS // 2 // BATCH


def launch(root: Path, log: str, module: str, *args: str, env: dict | None = None):
    """`module` on 2 processes (DDP, gloo), recording every batch each process collates."""
    extra = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(TESTS), "VOXLM_TEST_BATCHES": str(root / log), **(env or {})}
    return run_accelerate(
        "record_batches", [module, *args], 2, cpu=True, env=extra, capture_output=True, text=True, timeout=600
    )


def batches(root: Path, log: str, rank: int) -> list[list[str]]:
    return [json.loads(line) for line in (root / f"{log}.rank{rank}").read_text().splitlines()]


def write_shards(rows, folder: Path) -> None:
    """`rows` as `SHARDS` parquet files, the layout of a Hub data set repository."""
    folder.mkdir()
    for shard in range(SHARDS):
        rows.shard(SHARDS, shard, contiguous=True).to_parquet(str(folder / f"train-{shard:05d}.parquet"))


def spoken_rows():
    """`ROWS` tiny spoken examples whose transcripts are unique (numbered)."""
    rows = tiny_spoken_dataset(ROWS, seed=3)
    return rows.map(lambda row, index: {"text": f"{row['text']} {index}"}, with_indices=True)


def assert_every_example_once(root: Path, texts: list[str]) -> None:
    """The killed run's first 2 batches (checkpoint-2) and the resumed run's batches 3 and 4 of each process are
    the whole epoch, each example once, in batches of `BATCH`, each process reading whole files of its own (the
    targets end with their row number)."""
    trained = []
    for rank in range(2):
        before, after = batches(root, "killed", rank), batches(root, "resumed", rank)
        assert all(len(batch) == BATCH for batch in before + after)
        # The resumed run replays the stream from its start and skips the 2 batches the checkpoint has trained.
        assert after[:3] == before[:3]
        mine = [text for batch in before[:2] + after[2:4] for text in batch]
        assert len({int(text.rsplit(" ", 1)[1]) // (ROWS // SHARDS) for text in mine}) == SHARDS // 2
        trained += mine
    assert sorted(trained) == sorted(texts)  # the whole epoch, each example exactly once, over both processes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("streaming")
    rows = spoken_rows()
    write_shards(rows, root / "corpus")
    write_recipe(root, callbacks=["kill_callback:KillAtStep"])
    config = yaml.safe_load((root / "recipe.yaml").read_text())
    config["datasets"] = {"corpus": {"path": str(root / "corpus"), "task": "asr", "streaming": True}}
    config["batching"] = {"max_seconds": 100.0, "max_batch_size": BATCH, "sort_window": ROWS // 2}
    config["training"] = {"learning_rate": 1e-2, "logging_steps": 1, "save_steps": 2}
    config["evaluation"] = {"examples": 0}
    config["stages"] = [{"name": "adapter", "datasets": ["corpus"], "max_steps": STEPS}]
    (root / "recipe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root, rows["text"]


def test_a_run_killed_mid_epoch_and_resumed_trains_on_every_example_once(corpus):
    root, texts = corpus
    recipe = ["voxlm.train.curriculum", "--config", str(root / "recipe.yaml")]
    killed = launch(root, "killed", *recipe, env={"VOXLM_TEST_KILL": "adapter:3"})
    assert killed.returncode != 0  # both processes died after step 3; checkpoint-2 is the newest
    assert (root / "run" / "01-adapter" / "checkpoint-2").is_dir()
    resumed = launch(root, "resumed", *recipe, "--resume_from_checkpoint")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "checkpoint-2" in resumed.stdout
    assert_every_example_once(root, texts)


def test_streamed_alignment_killed_mid_epoch_and_resumed_trains_on_every_example_once(tmp_path):
    rows = spoken_rows().select_columns(["audio", "text"]).rename_column("text", "transcript")
    rows = rows.map(lambda row: {"continuation": f"and then {row['transcript']}"})  # unique, numbered targets
    write_shards(rows, tmp_path / "corpus")
    model, processor = tiny_voxlm("whisper", "llama", adapter="blsp")
    model.save_pretrained(tmp_path / "start")
    processor.save_pretrained(tmp_path / "start")
    run = tmp_path / "run"
    command = ["voxlm.train.align", "train", "--data", str(tmp_path / "corpus"), "--model", str(tmp_path / "start"),
               "--output_dir", str(run), "--streaming", "--max_seconds", "100", "--max_batch_size", str(BATCH),
               "--sort_window", str(ROWS // 2), "--template", "plain", "--max_steps", str(STEPS),
               "--save_steps", "2", "--learning_rate", "1e-2", "--warmup_steps", "0", "--report_to", "none",
               "--disable_tqdm", "true"]  # fmt: skip
    killed = launch(tmp_path, "killed", *command, env={"VOXLM_TEST_KILL": "run:3"})
    assert killed.returncode != 0  # both processes died after step 3; checkpoint-2 is the newest
    assert (run / "checkpoint-2").is_dir() and not (run / "checkpoint-4").exists()
    resumed = launch(tmp_path, "resumed", *command, "--resume_from_checkpoint", str(run / "checkpoint-2"))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    state = json.loads((run / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS and (run / "model.safetensors").is_file()
    assert_every_example_once(tmp_path, rows["continuation"])
