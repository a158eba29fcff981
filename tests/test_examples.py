"""The offline example scripts: option checks that must fail before hours of work, and their cache names."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import blsp_offline  # noqa: E402

from voxlm.train.core.prompts import BLSP_INSTRUCTION  # noqa: E402


def test_blsp_example_rejects_a_missing_warm_start_before_any_work(tmp_path):
    with pytest.raises(SystemExit, match="no VoxLM model there.*'shipped'"):
        blsp_offline.main(["--warm-start", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()  # nothing was built


def test_blsp_example_accepts_shipped_and_saved_folders(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(SystemExit, match="no VoxLM model there"):  # a saved model, but not a VoxLM one
        blsp_offline.check_warm_start(blsp_offline.parse_args(["--warm-start", str(tmp_path)]))
    (tmp_path / "config.json").write_text('{"model_type": "voxlm"}')
    for warm_start in ("shipped", str(tmp_path)):
        blsp_offline.check_warm_start(blsp_offline.parse_args(["--warm-start", warm_start]))
    assert blsp_offline.warm_start_model(blsp_offline.parse_args([]), tmp_path) is None
    assert blsp_offline.warm_start_model(blsp_offline.parse_args(["--warm-start", str(tmp_path)]), tmp_path) == tmp_path


def test_blsp_example_keeps_continuations_of_other_instructions_apart():
    tags = [blsp_offline.instruction_tag(text) for text in (BLSP_INSTRUCTION, "{transcript}", "Reply: {transcript}")]
    assert tags[:2] == ["", "follow-"]  # the default run's cache folder keeps its name
    assert len(set(tags)) == 3 and tags[2] != blsp_offline.instruction_tag("Answer: {transcript}")
    assert blsp_offline.instruction_tag("Reply:") == tags[2]  # the same prompt once the slot is added
