"""Blind pairs: strips that hide which model made which copy, and the count of what the viewer said."""

import json

import numpy as np
import pytest
from PIL import Image

from gwm_desktop.core.engine import default_model_dir
from training.blind_pairs import main, score, strip


def test_a_strip_is_the_same_centre_crop_of_three_enlarged_and_transparency_shows_white():
    original = Image.new("RGBA", (40, 20), (0, 0, 0, 0))          # fully transparent
    first, second = Image.new("RGB", (40, 20), "red"), Image.new("RGB", (40, 20), "blue")
    out = strip(original, first, second, crop=0.5, zoom=3, gap=12)
    assert out.size == (3 * 20 * 3 + 2 * 12, 10 * 3)
    assert out.getpixel((5, 5)) == (255, 255, 255)
    assert out.getpixel((60 + 12 + 5, 5)) == (255, 0, 0)
    assert out.getpixel((2 * (60 + 12) + 5, 5)) == (0, 0, 255)


def test_score_names_the_model_behind_each_answer():
    key = {"00": {"A": "candidate"}, "01": {"A": "base"}, "02": {"A": "base"}}
    counts = score(key, ["A", "A", "="], clear={"00"})
    assert counts == {"candidate plain": 1, "base slight": 1, "same": 1}
    assert score(key, ["B", "B", "B"], clear=set()) == {"base slight": 1, "candidate slight": 2}
    with pytest.raises(SystemExit, match="2 answers for 3"):
        score(key, ["A", "B"], clear=set())
    with pytest.raises(SystemExit, match="A, B or ="):
        score(key, ["A", "x", "="], clear=set())


def test_make_then_score_from_the_command_line(tmp_path, capsys):
    data = tmp_path / "art"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        base = np.linspace(40, 220, 128)[None, :, None] * np.ones((96, 1, 3))
        Image.fromarray(np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)).save(data / f"a{i}.png")
    out = tmp_path / "blind"
    model = str(default_model_dir())
    assert main(["make", "--base", model, "--candidate", model, "--data", str(data), "--p", "0.05",
                 "--out", str(out)]) == 0
    sealed = json.loads((tmp_path / "blind.key.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["00.png", "01.png"]     # the key is not among the strips
    assert {s["A"] for s in sealed["strips"].values()} <= {"base", "candidate"} and sealed["p"] == 0.05
    assert sorted(s["file"] for s in sealed["strips"].values()) == ["a0.png", "a1.png"]
    shown = np.asarray(Image.open(out / "00.png")).astype(int)
    tile = (shown.shape[1] - 24) // 3
    original, first, second = (shown[:, i * (tile + 12): i * (tile + 12) + tile] for i in range(3))
    assert np.array_equal(first, second)            # the same model twice: the same copy
    assert 0 < np.abs(first - original).mean() < 8  # watermarked, faintly
    capsys.readouterr()
    assert main(["score", str(out), "--answers", "A,=", "--clear", "0"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert sum(counts.values()) == 2 and counts["same"] == 1
    with pytest.raises(SystemExit, match="not empty"):    # no stale strip mixes with a new set
        main(["make", "--base", model, "--candidate", model, "--data", str(data), "--out", str(out)])


def test_against_none_one_copy_is_the_original_itself(tmp_path):
    data = tmp_path / "art"
    data.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(60, 200, (96, 128, 3), dtype=np.uint8)).save(data / "a.png")
    out = tmp_path / "seen"
    assert main(["make", "--base", "none", "--candidate", str(default_model_dir()), "--data", str(data),
                 "--p", "0.05", "--out", str(out), "--seed", "1"]) == 0
    sealed = json.loads((tmp_path / "seen.key.json").read_text())
    shown = np.asarray(Image.open(out / "00.png")).astype(int)
    tile = (shown.shape[1] - 24) // 3
    original, first, second = (shown[:, i * (tile + 12): i * (tile + 12) + tile] for i in range(3))
    base_tile = first if sealed["strips"]["00"]["A"] == "base" else second
    marked_tile = second if sealed["strips"]["00"]["A"] == "base" else first
    assert np.array_equal(base_tile, original) and not np.array_equal(marked_tile, original)
