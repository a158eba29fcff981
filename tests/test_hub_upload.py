"""The upload path at the huggingface_hub boundary: which repository calls and commit operations `push` sends."""

from unittest import mock

import pytest
from hub_helpers import distinct_tiny_voxlm, write_run
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

from voxlm.hub_cards import upload_folder
from voxlm.train.cli import main

REPO_ID = "voxlm-test/tiny-voxlm"
SECRET = "hf_thisIsNotARealTokenButMustNeverBePrinted"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    model, processor = distinct_tiny_voxlm(lora=False)
    return write_run(tmp_path_factory.mktemp("upload") / "run", model, processor)


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported") / "out"
    assert main(["push", str(run_dir), REPO_ID, "--dry-run", str(folder)]) == 0
    return folder


def fake_api(existing: list[str]) -> mock.MagicMock:
    api = mock.MagicMock(spec=HfApi)
    api.list_repo_files.return_value = existing
    api.create_commit.return_value = mock.MagicMock(
        commit_url=f"https://huggingface.co/{REPO_ID}/commit/0123abc", pr_url=None
    )
    return api


def sent_operations(api: mock.MagicMock) -> tuple[dict[str, str], set[str]]:
    """-> ({path in repo: local file} of the additions, {paths deleted}) of the single commit."""
    assert api.create_commit.call_count == 1
    operations = api.create_commit.call_args.args[1]
    adds = {op.path_in_repo: op.path_or_fileobj for op in operations if isinstance(op, CommitOperationAdd)}
    deletes = {op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete)}
    assert len(adds) + len(deletes) == len(operations)
    return adds, deletes


def test_upload_is_one_commit_of_every_file_replacing_stale_weights(exported):
    existing = [
        ".gitattributes",
        "README.md",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "old_helper.py",
        "notes/eval.txt",
    ]
    api = fake_api(existing)
    upload_folder(exported, REPO_ID, private=True, revision="v1", commit_message="First release", api=api)

    api.create_repo.assert_called_once_with(REPO_ID, repo_type="model", private=True, exist_ok=True)
    api.create_branch.assert_called_once_with(REPO_ID, branch="v1", exist_ok=True, repo_type="model")
    api.list_repo_files.assert_called_once_with(REPO_ID, revision="v1", repo_type="model")
    adds, deletes = sent_operations(api)
    local = sorted(path.name for path in exported.iterdir())
    assert sorted(adds) == local
    assert all(adds[name] == str(exported / name) for name in local)
    # Old shards, their index and old code go; files the export does not manage stay.
    assert deletes == {
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "old_helper.py",
    }
    kwargs = api.create_commit.call_args.kwargs
    assert kwargs["commit_message"] == "First release"
    assert kwargs["revision"] == "v1" and kwargs["create_pr"] is False


def test_pull_request_on_main_creates_no_branch(exported):
    api = fake_api([".gitattributes"])
    upload_folder(exported, REPO_ID, create_pr=True, api=api)
    api.create_branch.assert_not_called()
    adds, deletes = sent_operations(api)
    assert deletes == set() and "model.safetensors" in adds
    kwargs = api.create_commit.call_args.kwargs
    assert kwargs["create_pr"] is True and kwargs["revision"] is None
    assert kwargs["commit_message"] == "Upload tiny-voxlm with voxlm push"
    api.create_repo.assert_called_once_with(REPO_ID, repo_type="model", private=False, exist_ok=True)


def test_cli_push_exports_and_uploads_without_exposing_the_token(run_dir, exported, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    api = fake_api([".gitattributes"])
    with mock.patch("huggingface_hub.HfApi", return_value=api) as api_class:
        code = main(["push", str(run_dir), REPO_ID, "--private", "--revision", "v2", "--commit-message", "Tiny"])
    assert code == 0
    api_class.assert_called_once_with()  # huggingface_hub finds the token itself; voxlm never passes it
    adds, _ = sent_operations(api)
    assert sorted(adds) == sorted(path.name for path in exported.iterdir())
    api.create_repo.assert_called_once_with(REPO_ID, repo_type="model", private=True, exist_ok=True)
    assert api.create_commit.call_args.kwargs["revision"] == "v2"
    out, err = capsys.readouterr()
    assert f"https://huggingface.co/{REPO_ID}/commit/0123abc" in out
    assert SECRET not in out + err


def test_push_without_a_token_stops_before_any_request(run_dir, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # No stored login either (huggingface_hub reads its token file location at import time, so patch the lookup).
    with mock.patch("huggingface_hub.get_token", return_value=None), mock.patch("huggingface_hub.HfApi") as api_class:
        code = main(["push", str(run_dir), REPO_ID])
    assert code == 1
    api_class.assert_not_called()
    assert "hf auth login" in capsys.readouterr().err
