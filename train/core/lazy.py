"""Package surfaces whose names are imported on first use.

The recipe packages re-export their public API from submodules that import torch and transformers. Importing them
eagerly would make `voxlm --help` (and every light `python -m` module below them) pay for those imports, so each
package's `__init__` declares its names and lets this module load them on first access (PEP 562).
"""

import importlib
import importlib.util
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, where `exports` maps each public name to its submodule."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        if importlib.util.find_spec(f"{package}.{name}") is not None:  # a submodule not imported yet
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
