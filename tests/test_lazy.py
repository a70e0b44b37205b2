"""Lazy re-exports: a stage's names import their module on first use, and dir() shows it all."""

from __future__ import annotations

import importlib
import sys

import pytest

import nano_banana


@pytest.mark.parametrize(
    "package", ["nano_banana", "nano_banana.generate", "nano_banana.model", "nano_banana.demo"]
)
def test_dir_lists_the_exports_and_what_the_package_holds(package):
    module = importlib.import_module(package)
    names = dir(module)
    assert set(module.__all__) <= set(names)  # the lazy exports, imported or not
    assert {"__name__", "__path__"} <= set(names)  # and the package's own names
    assert names == sorted(names)


def test_dir_shows_the_version_and_submodules_imported_later():
    importlib.import_module("nano_banana.generate.spec")  # arrives after the map was built
    names = dir(sys.modules["nano_banana.generate"])
    assert "spec" in names
    assert "__version__" in dir(nano_banana)


def test_an_unknown_name_is_an_attribute_error():
    import nano_banana.generate as generate

    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        generate.nope  # noqa: B018
