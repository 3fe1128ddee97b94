"""Shared fixtures: an isolated data home, the shipped model, real images when ../shared is present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.torch_threads import single_thread_torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DEFAULT_MODEL = Path(os.environ.get("GWM_TEST_MODEL", ROOT / "resources" / "models" / "default"))


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own GWM_HOME: the suite never touches a real user's profiles.

    New profiles get keys from a fixed sequence, so a verdict at a 1 % false-positive rate is the
    same on every run instead of failing about once in a hundred images by design.
    """
    import hashlib
    import itertools

    home = tmp_path_factory.mktemp("gwm_home")
    monkeypatch.setenv("GWM_HOME", str(home))
    counter = itertools.count()
    monkeypatch.setattr("gwm_desktop.core.profiles.new_key",
                        lambda: hashlib.sha256(f"gwm-test-key-{next(counter)}".encode()).digest())
    return home


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Two cores shared with the test process's own work (and the GUI thread the heartbeat test
    watches): one intra-op thread per test avoids oversubscription; restored after each test."""
    yield from single_thread_torch()


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The model every test runs on: the shipped one (or $GWM_TEST_MODEL). A module that needs a
    tiny model overrides this fixture and gets its own ``engine``."""
    if not (DEFAULT_MODEL / "manifest.json").exists():
        pytest.fail(f"the model {DEFAULT_MODEL} is missing (resources/models/default ships with the checkout)")
    return DEFAULT_MODEL


@pytest.fixture(scope="session")
def engine(model_dir: Path):
    """One Engine (model, LPIPS, scanners) per session on the CPU: the suite's only engine fixture."""
    from gwm_desktop.core.engine import Engine

    return Engine(model_dir, "cpu")


def shared_folder(name: str) -> Path:
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"../shared/data/{name} is absent (it ships beside the repo in CI and development)")
    return folder


@pytest.fixture(scope="session")
def paintings() -> list[Path]:
    return sorted(shared_folder("paintings").glob("*.jpg"))


@pytest.fixture(scope="session")
def portraits() -> list[Path]:
    return sorted(shared_folder("portraits").glob("*.jpg"))
