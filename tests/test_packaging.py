"""Packaging: `packages` in pyproject.toml follows the folders, and the wheel works installed on its own.

The wheel test builds the wheel from this checkout (no build isolation: offline), installs it with pip into a fresh
virtual environment, not editable and without dependencies, and gives that environment the dependencies of the
test environment through a `.pth` file (torch and transformers are not installed twice). The installed `voxlm` must
then be the wheel's: every module imports, the data files are there and `voxlm --help` runs.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_packages_are_exactly_the_folders_with_an_init_file():
    found = set()
    for package, folder in PYPROJECT["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *relative.parts]))
    assert set(PYPROJECT["packages"]) == found
    assert set(PYPROJECT["package-data"]) <= found


IMPORT_EVERYTHING = r"""
import importlib, json, pkgutil, sys
from pathlib import Path
import voxlm

root = Path(sys.argv[1])
names, mains = [], []
for path in voxlm.__path__:
    assert Path(path).resolve().is_relative_to(root), f"voxlm comes from {path}, not from the installed wheel"
for info in pkgutil.walk_packages(voxlm.__path__, "voxlm."):
    # `python -m` entry points run their command when imported: they are only checked to be there.
    (mains if info.name.endswith(".__main__") else names).append(info.name)
for name in names:
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().is_relative_to(root), module.__file__
from voxlm.train.core.metrics import compute_metric
from voxlm.train.offline.speech import VOICES_FILE
from voxlm.train.offline.shipped import RECIPE, shipped_dir
assert compute_metric("wer", ["a b"], ["a c"])["wer"] == 0.5
assert VOICES_FILE.is_file() and RECIPE.is_file() and (shipped_dir() / "adapter.safetensors").is_file()
print(json.dumps({"modules": names, "mains": mains}))
"""


def source_tree(destination: Path) -> Path:
    """The files git tracks (and new ones it does not ignore), copied: the build must not see a stale `build/`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def test_the_wheel_installs_into_a_fresh_environment_and_runs(tmp_path):
    wheels = tmp_path / "wheels"
    source = source_tree(tmp_path / "source")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", wheels,
         source],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = wheels.glob("voxlm-*.whl")
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", fresh], check=True)
    python = fresh / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
        check=True, capture_output=True,
    )  # fmt: skip
    site_packages = Path(
        subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], check=True,
                       capture_output=True, text=True).stdout.strip()
    )  # fmt: skip
    (site_packages / "test_environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    imported = subprocess.run(
        [python, "-c", IMPORT_EVERYTHING, str(site_packages / "voxlm")],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr[-3000:]
    result = __import__("json").loads(imported.stdout.strip().splitlines()[-1])
    assert {"voxlm.train.core.prompts", "voxlm.train.align.training", "voxlm.hub_cards.push"} <= set(result["modules"])
    assert set(result["mains"]) == {f"voxlm.train.{recipe}.__main__" for recipe in ("align", "classify", "curriculum")}
    helped = subprocess.run([fresh / "bin" / "voxlm", "--help"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert helped.returncode == 0 and "demo" in helped.stdout and "classify" in helped.stdout, helped.stderr
