"""Hostile images: `gwm protect` and `gwm scan` over a few hundred mutated files.

Every mutation (bit flips, truncations, another format's header pasted on) comes from one seed, so a
failure replays exactly. A batch of them must end with one line per file, no traceback, no partial
or temp file in the output folder, and the originals byte for byte as they were.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gwm_desktop.core.image_io import ImageLoadError, load_image
from tests.fixtures.cli_run import run_gwm

SEED = 20261201
PER_KIND = 100  # x 3 kinds of damage = 300 files
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".gif": "GIF"}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch, model_dir):
    monkeypatch.setenv("GWM_THREADS", "1")


def originals(rng: np.random.Generator) -> dict[str, bytes]:
    """One small, textured, valid image per format: the seeds of every mutation."""
    ramp = np.linspace(0, 200, 32, dtype=np.float64)
    base = np.stack([ramp[None, :].repeat(32, 0), ramp[:, None].repeat(32, 1), np.full((32, 32), 90.0)], -1)
    encoded = {}
    for extension, fmt in FORMATS.items():
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt)
        encoded[extension] = buffer.getvalue()
    return encoded


def mutate(kind: str, data: bytes, others: list[bytes], rng: np.random.Generator) -> bytes:
    damaged = bytearray(data)
    if kind == "flip":
        for position in rng.integers(0, len(data), int(rng.integers(1, 17))):
            damaged[position] ^= 1 << int(rng.integers(0, 8))
    elif kind == "cut":
        del damaged[int(rng.integers(1, len(data))):]
    else:  # the first bytes of another format in front of this one's body
        donor = others[int(rng.integers(0, len(others)))]
        length = int(rng.integers(2, min(64, len(donor), len(data))))
        damaged[:length] = donor[:length]
    return bytes(damaged)


def make_fuzz_folder(folder: Path) -> list[Path]:
    rng = np.random.default_rng(SEED)
    seeds = originals(rng)
    folder.mkdir()
    paths = []
    for kind in ("flip", "cut", "header"):
        for index in range(PER_KIND):
            extension = list(seeds)[index % len(seeds)]
            others = [data for ext, data in seeds.items() if ext != extension]
            path = folder / f"{kind}_{index:03d}{extension}"
            path.write_bytes(mutate(kind, seeds[extension], others, rng))
            paths.append(path)
    return paths


def digests(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.mark.slow
def test_mutated_images_fail_one_line_each_and_leave_nothing_partial(tmp_path, capsys):
    inputs = make_fuzz_folder(tmp_path / "fuzz")
    assert len(inputs) >= 300
    before = digests(inputs)
    out = tmp_path / "out"

    with warnings.catch_warnings(record=True) as shown:  # what a terminal would print besides our lines
        warnings.simplefilter("always")
        code, output = run_gwm(["protect", tmp_path / "fuzz", "--out", out, "--format", "png"], capsys)
    assert "Traceback" not in output and not [str(w.message) for w in shown]
    lines = output.splitlines()
    ok = {Path(m[1]): Path(m[2]) for m in (re.match(r"^ok     (.+) -> (.+?)  \(LPIPS", line) for line in lines) if m}
    failed = [Path(m[1]) for m in (re.match(r"^FAILED (.+?): .+", line) for line in lines) if m]
    others = [line for line in lines if not line.startswith(("ok ", "FAILED ", "device: "))]
    assert others == [f"{len(ok)} exported, {len(failed)} failed (profile 'default', p=0.05)"]  # no stray lines
    assert sorted([*ok, *failed]) == sorted(inputs)  # each file exactly once: one line per file
    assert failed and code == 1
    assert sorted(out.iterdir()) == sorted(ok.values())  # nothing partial, no temp or hidden file
    for output_file in ok.values():
        assert load_image(output_file).rgb.shape[:2] == (32, 32)
    for path in failed:
        with pytest.raises(ImageLoadError):  # each refusal is real: the file does not load
            load_image(path)

    code, output = run_gwm(["scan", tmp_path / "fuzz"], capsys)
    assert "Traceback" not in output
    results = [line for line in output.splitlines() if line.startswith(("error ", "WATERMARK ", "clean "))]
    assert len(results) == len(inputs) and code == 1
    unreadable = [Path(m[1]) for m in (re.match(r"^error +(.+?): .+", line) for line in results) if m]
    assert sorted(unreadable) == sorted(failed)  # scan refuses exactly the files protect refused
    assert digests(inputs) == before  # originals untouched by both commands
