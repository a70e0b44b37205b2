"""Re-exports that import their module on first use (PEP 562), for package ``__init__`` files.

A stage's package re-exports its public names so that a user writes
``from nano_banana.generate import Engine``. Importing them eagerly would make
every submodule import pay for the whole stage: ``nano_banana.generate.preview``
would pull in diffusers through the engine, and the CLI would start seconds later.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(
    package: str, modules: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``.

    ``modules`` maps a module (``".engine"``) to the names it exports, space-separated.
    """
    exports = {name: module for module, names in modules.items() for name in names.split()}

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    def __dir__() -> list[str]:
        # What the package holds now (``__version__``, submodules imported so far) and what
        # it exports lazily: read at call time, as submodules arrive after this is built.
        return sorted(set(sys.modules[package].__dict__) | set(exports))

    return __getattr__, __dir__, sorted(exports)
