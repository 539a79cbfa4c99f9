"""Fixtures for the agent tests. The repository root goes on sys.path so `tests.agent.llm_fixtures`
imports the same way here and in bench/llm_eval.py."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)


@pytest.fixture
def store(tmp_path):
    """A real, empty store in a temporary folder."""
    from storage import open_store

    s = open_store(url=f"sqlite:///{tmp_path / 'vividflow.db'}", home=tmp_path)
    yield s
    s.close()
