"""``gwm-desktop --self-test``, the check a build runs without a person, run here in-process.

The frozen build runs the same function (packaging/README.md); CI has no time to build a bundle, so
these tests prove the check itself: it passes on a working install, fails loudly when a resource is
missing, and never touches the user's data home.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gwm_desktop import selftest
from gwm_desktop.resources import resources_dir

HAS_SHIPPED_MODEL = (resources_dir() / "models" / "default" / "manifest.json").exists()


@pytest.mark.skipif(not HAS_SHIPPED_MODEL, reason="the self-test checks the shipped model, "
                    "resources/models/default, which is absent")
def test_self_test_passes_and_leaves_the_users_home_alone(isolated_home: Path):
    lines: list[str] = []

    code = selftest.run_self_test(device="cpu", log=lines.append)

    log = "\n".join(lines)
    assert code == 0, log
    assert lines[-1].startswith("PASS"), log
    assert "protect:" in log and "LPIPS" in log and "FLAGGED" in log, log
    assert "backup:   encrypted key backup sealed and reopened" in log, log
    assert "CPU" in log, log  # the device used is named
    assert os.environ["GWM_HOME"] == str(isolated_home)  # restored after the temporary home
    assert not any(isolated_home.iterdir())  # no profile was created in the user's home


def test_self_test_fails_when_the_bundled_sample_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    incomplete = tmp_path / "resources"
    shutil.copytree(resources_dir(), incomplete, ignore=shutil.ignore_patterns("samples"))
    monkeypatch.setenv("GWM_RESOURCES", str(incomplete))
    lines: list[str] = []

    assert selftest.run_self_test(device="cpu", log=lines.append) == 1
    assert any("sample is missing" in line for line in lines), lines
    assert lines[-1].startswith("FAIL")


def test_gwm_desktop_self_test_flag_runs_the_self_test_before_any_window(monkeypatch: pytest.MonkeyPatch):
    from gwm_desktop.ui import app

    monkeypatch.setattr(selftest, "run_self_test", lambda: 7)
    monkeypatch.setattr(app, "build_window", lambda **_: pytest.fail("no window may be built for --self-test"))

    assert app.main(["gwm-desktop", "--self-test"]) == 7
