"""Hub-travelling files that two folders need: one canonical file in `modeling/`, a generated copy in `processing/`."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("sync_hub_copies", ROOT / "scripts" / "sync_hub_copies.py")
sync = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync)


@pytest.mark.parametrize("copy", sorted(sync.HUB_COPIES))
def test_each_copy_is_its_canonical_file_under_a_do_not_edit_header(copy):
    source = sync.HUB_COPIES[copy]
    text = (ROOT / copy).read_text(encoding="utf-8")
    header, _, body = text.partition("\n")
    assert body == (ROOT / source).read_text(encoding="utf-8"), f"run `python scripts/sync_hub_copies.py` ({copy})"
    assert header.startswith(f"# Generated from {source}") and "edit that file, not this copy" in header


def test_every_file_both_folders_hold_is_a_listed_copy():
    shared = {path.name for path in (ROOT / "modeling").glob("*.py")} & {
        path.name for path in (ROOT / "processing").glob("*.py")
    }
    assert {f"processing/{name}" for name in shared - {"__init__.py"}} == set(sync.HUB_COPIES)
    assert sync.stale_copies() == []
