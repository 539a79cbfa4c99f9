"""Shared test setup: nothing touches the network or the user's data folder."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own VIVIDFLOW_HOME unless it sets one itself."""
    home = tmp_path_factory.mktemp("vividflow-home")
    monkeypatch.setenv("VIVIDFLOW_HOME", str(home))
    monkeypatch.delenv("VIVIDFLOW_DB_URL", raising=False)
    yield home
