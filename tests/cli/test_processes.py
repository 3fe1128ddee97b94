"""Real `gwm` processes: two runs into one folder, and a run stopped by SIGTERM.

The two profiles' inputs share their names but not their colours (alice's red, bob's blue), so each
output file shows whose image it really holds, whatever either run reports.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gwm_desktop.core.image_io import load_image
from gwm_desktop.core.profiles import ProfileStore

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 50
OK_LINE = re.compile(r"^ok     (?P<source>.+) -> (?P<output>.+?)  \(LPIPS")


def gwm(*args: object, home: Path) -> subprocess.Popen:
    env = dict(os.environ, GWM_HOME=str(home), PYTHONPATH=str(ROOT), GWM_THREADS="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "gwm_desktop.cli.main", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def tinted_inputs(folder: Path, channel: int, count: int, seed: int) -> None:
    """`count` images all named art.png (one per subfolder): every one of them competes for the same
    next free output name, 'art (k).png', so each file is one round of the race."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        pixels = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
        pixels[..., channel] += 160
        (folder / f"{index:02d}").mkdir(parents=True)
        Image.fromarray(pixels).save(folder / f"{index:02d}" / "art.png")


def dominant_channel(path: Path) -> int:
    return int(load_image(path).rgb.reshape(-1, 3).mean(axis=0).argmax())


@pytest.mark.slow
def test_two_runs_into_one_folder_never_clobber_each_other(tmp_path, isolated_home):
    store = ProfileStore()
    store.create("alice")
    store.create("bob")
    tinted_inputs(tmp_path / "alice", channel=0, count=ROUNDS, seed=1)
    tinted_inputs(tmp_path / "bob", channel=2, count=ROUNDS, seed=2)
    out = tmp_path / "shared_out"
    runs = {name: gwm("protect", tmp_path / name, "--out", out, "--profile", name, "--format", "png",
                      home=isolated_home) for name in ("alice", "bob")}
    finished = {name: run.communicate(timeout=600) for name, run in runs.items()}
    reported: dict[Path, str] = {}
    for name, (stdout, stderr) in finished.items():
        assert runs[name].returncode == 0, stderr
        assert "Traceback" not in stdout + stderr
        outputs = [Path(m["output"]) for m in map(OK_LINE.match, stdout.splitlines()) if m]
        assert len(outputs) == ROUNDS, stdout
        for output in outputs:
            assert output not in reported, f"{output} reported by both {reported.get(output)} and {name}"
            reported[output] = name
    written = sorted(out.iterdir())
    assert sorted(reported) == written  # every file reported exists, nothing unreported, no temp files
    channel = {"alice": 0, "bob": 2}
    clobbered = [f"{p.name} (reported by {who})" for p, who in reported.items() if dominant_channel(p) != channel[who]]
    assert not clobbered, f"files holding the other profile's image: {clobbered}"


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigterm_stops_a_protect_run_with_complete_files_only(tmp_path, isolated_home):
    tinted_inputs(tmp_path / "in", channel=1, count=40, seed=3)
    out = tmp_path / "out"
    run = gwm("protect", tmp_path / "in", "--out", out, home=isolated_home)
    assert run.stdout is not None
    first = run.stdout.readline()  # the first file is written: the run is in the middle of the batch
    assert first.startswith("ok "), first + run.stderr.read()
    run.send_signal(signal.SIGTERM)
    started = time.monotonic()
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 128 + signal.SIGTERM and time.monotonic() - started < 60
    assert "interrupted" in stderr and "Traceback" not in stdout + stderr
    written = sorted(out.iterdir())
    assert 1 <= len(written) < 40
    assert not [p for p in written if p.name.startswith(".") or p.suffix == ".tmp"]
    for path in written:
        assert load_image(path).rgb.shape == (32, 32, 3)  # complete, decodable files only
