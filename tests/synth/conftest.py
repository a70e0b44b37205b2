"""Fixtures the dataset factory's tests share: the shipped catalog and presets, no user files."""

import pytest

from nano_banana.parts.catalog import load_catalog
from nano_banana.prompt.presets import load_presets


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return load_catalog(user_dir=tmp_path_factory.mktemp("no-user-catalog"))


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    return load_presets(tmp_path_factory.mktemp("no-user-presets"))
