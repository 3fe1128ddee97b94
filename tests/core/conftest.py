"""Fixtures of the core tests: the mixed batch of good and bad image files (tests/fixtures/bad_batch.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.bad_batch import make_mixed_batch


@pytest.fixture(scope="session")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    make_mixed_batch(folder)
    return folder
