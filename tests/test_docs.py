"""Every path the docs and the `--help` texts name exists in a checkout, and every module they run can be found.

A path is a link target (relative to the file that links it) or a word that starts with a folder of the checkout
(`train/configs/...`, `examples/...`, or `voxlm/train/...`, which is never one); output folders such as `runs/` and
placeholders (`<name>`, `{level}`, `*`) are not paths of a checkout. Modules are the `-m` arguments of commands.
"""

import contextlib
import importlib.util
import io
import re
from pathlib import Path

import pytest

from voxlm.train import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "train/README.md", "hub_cards/README.md", "benchmarks/README.md", *sorted(
    str(path.relative_to(ROOT)) for path in (ROOT / "docs").glob("*.md")
)]  # fmt: skip
TOP_LEVEL = ("modeling", "processing", "train", "hub_cards", "benchmarks", "examples", "tests", "scripts", "docs")
PATH = re.compile(rf"(?<![\w./~-])((?:voxlm/)?(?:{'|'.join(map(re.escape, TOP_LEVEL))})/[\w./-]*)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MODULE = re.compile(r"(?:^|\s)-m\s+([\w.]+)")
HELP = [
    ["voxlm", "--help"],
    ["voxlm", "demo", "--help"],
    ["voxlm", "push", "--help"],
    ["voxlm", "classify", "--help"],
    ["voxlm.train.curriculum", "--help"],
    ["voxlm.train.align", "--help"],
    ["voxlm.train.align", "continuations", "--help"],
    ["voxlm.train.align", "train", "--help"],
    ["voxlm.train.align", "evaluate", "--help"],
    ["voxlm.train.classify", "--help"],
    ["voxlm.train.core.evaluate", "--help"],
]


def missing_paths(text: str, base: Path) -> list[str]:
    """The paths `text` names that do not exist; link targets are read relative to `base`."""
    named = [(base / target.split("#")[0], target) for target in LINK.findall(text) if not re.match(r"\w+:|#", target)]
    named += [(ROOT / word.rstrip(".,:;"), word) for word in PATH.findall(text)]
    return sorted({word for path, word in named if not re.search(r"[<>{}*]|\.\.\.", word) and not path.exists()})


def unknown_modules(text: str) -> list[str]:
    names = [name for name in MODULE.findall(text) if not name.endswith(".")]  # `-m voxlm.train.<recipe>`
    return [name for name in names if importlib.util.find_spec(name) is None]


@pytest.mark.parametrize("doc", DOCS)
def test_paths_and_modules_in_the_docs_exist(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert missing_paths(text, (ROOT / doc).parent) == []
    assert unknown_modules(text) == []


def help_text(command: list[str]) -> str:
    """What `command --help` prints (`voxlm ...`, or `python -m <module> ...`), run in this process."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        try:
            main = cli.main if command[0] == "voxlm" else importlib.import_module(command[0]).main
            main(command[1:])
        except SystemExit as stop:
            assert stop.code in (0, None), output.getvalue()
    return output.getvalue()


@pytest.mark.parametrize("command", HELP, ids=" ".join)
def test_paths_and_modules_in_the_help_texts_exist(command):
    text = help_text(command)
    assert "usage" in text.lower() or "commands" in text.lower(), text
    assert missing_paths(text, ROOT) == []
    assert unknown_modules(text) == []


def test_the_path_check_catches_a_path_outside_the_checkout():
    text = "See `voxlm/train/configs/x.yaml` and [the card](hub_cards/missing.md); runs/x and <name>/ are outputs."
    assert missing_paths(text, ROOT) == ["hub_cards/missing.md", "voxlm/train/configs/x.yaml"]
