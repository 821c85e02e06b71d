"""The dataset registry: every corpus is reachable through ``fastmer.datasets.load(name, root)``."""

import importlib

import pytest

from fastmer.datasets import DATASETS, load


def test_names_in_order():
    assert list(DATASETS) == ["casme2", "samm", "smic", "mmew", "casme3", "4dme", "megc2019", "manifest", "videos"]


@pytest.mark.parametrize("name", list(DATASETS))
def test_each_adapter_loads_and_names_a_missing_root(name, tmp_path):
    module = importlib.import_module(DATASETS[name])
    assert callable(module.load) and name == module.NAME
    with pytest.raises(FileNotFoundError, match="missing"):
        load(name, tmp_path / "missing")


def test_default_protocol_only_for_the_composite():
    defaults = {name: getattr(importlib.import_module(module), "DEFAULT_PROTOCOL", None)
                for name, module in DATASETS.items()}
    assert defaults == {"casme2": None, "samm": None, "smic": None, "mmew": None, "casme3": None, "4dme": None,
                        "megc2019": "megc2019-3class", "manifest": None, "videos": None}


def test_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'casme'; known: casme2, samm, smic, mmew, casme3, 4dme"):
        load("casme", tmp_path)
    with pytest.raises(ValueError, match="unknown label protocol 'five'"):
        load("samm", tmp_path / "missing", protocol="five")  # before the corpus is read
