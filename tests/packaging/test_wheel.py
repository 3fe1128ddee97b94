"""A non-editable install (`pip install .`) carries resources/ and finds it in the installed tree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "gwm_desktop", "training", "resources")
RESOURCE_FILES = ("models/default/manifest.json", "models/default/model.safetensors",
                  "lpips/alexnet_features.safetensors")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built offline from a copy of the checkout (the build writes beside it)."""
    pytest.importorskip("setuptools.command.bdist_wheel",
                        reason="building the wheel offline needs setuptools >= 70.1 (the dev extra)")
    source, dist = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dist), str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = dist.glob("gwm_desktop-*.whl")
    return built


@pytest.mark.slow
def test_wheel_holds_the_model_lpips_weights_and_samples(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in RESOURCE_FILES:
        assert f"gwm_desktop/_resources/{name}" in names, name
    samples = sorted(p.name for p in (ROOT / "resources" / "samples").iterdir())
    assert samples and all(f"gwm_desktop/_resources/samples/{s}" in names for s in samples)


@pytest.mark.slow
def test_installed_tree_resolves_its_own_resources(wheel: Path, tmp_path: Path):
    site = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)  # what pip install puts in site-packages
    probe = ("import json, sys; from gwm_desktop.resources import resources_dir; "
             "print(json.dumps([sys.modules['gwm_desktop'].__file__, str(resources_dir())]))")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("GWM_RESOURCES", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    package, resources = map(Path, json.loads(run.stdout))
    assert package.is_relative_to(site)  # the installed copy ran, not the checkout
    assert resources == site / "gwm_desktop" / "_resources"
    manifest = json.loads((resources / "models" / "default" / "manifest.json").read_text())
    shipped = json.loads((ROOT / "resources" / "models" / "default" / "manifest.json").read_text())
    assert manifest == shipped
    assert (resources / "lpips" / "alexnet_features.safetensors").stat().st_size == \
        (ROOT / "resources" / "lpips" / "alexnet_features.safetensors").stat().st_size
