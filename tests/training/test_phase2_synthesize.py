"""Synthesis: every image is recorded with what regenerates it; reruns resume; cancel leaves whole files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gwm_desktop.core.jobs import CancelToken, JobCancelled
from tests.training.phase2_tiny import build_tiny_pipeline
from training.phase2.synthesize import (
    DEFAULT_PROMPTS,
    RECORDS_FILE,
    default_prompts,
    load_prompts,
    read_records,
    regenerate,
    seeds_per_prompt,
    synthesize,
)


@pytest.fixture(scope="module")
def pipeline():
    return build_tiny_pipeline(seed=1)


def test_records_regenerate_each_image_from_prompt_and_seed(pipeline, tmp_path):
    prompts = ["a painting in the style of <sks>", "a photo of a cat"]
    progress = list(synthesize(pipeline, prompts, [3, 7], tmp_path, steps=2, resolution=32, batch_size=2))
    assert [p.done for p in progress] == [1, 2, 3, 4] and progress[-1].total == 4
    records = read_records(tmp_path)
    assert {(r.prompt, r.seed) for r in records} == {(p, s) for p in prompts for s in (3, 7)}
    files = sorted(f.name for f in tmp_path.glob("*.png"))
    assert files == sorted(r.file for r in records)
    for record in records:  # made in batches of 2, regenerated alone: same noise, same image
        stored = np.asarray(Image.open(tmp_path / record.file), dtype=np.int16)
        again = np.asarray(regenerate(pipeline, record), dtype=np.int16)
        assert stored.shape == (32, 32, 3)
        assert np.abs(stored - again).max() <= 1
    first = np.asarray(Image.open(tmp_path / records[0].file), dtype=np.int16)
    other_seed = next(r for r in records if r.prompt == records[0].prompt and r.seed != records[0].seed)
    assert np.abs(first - np.asarray(Image.open(tmp_path / other_seed.file), dtype=np.int16)).max() > 0


def test_rerun_skips_recorded_images_and_cancel_keeps_only_whole_files(pipeline, tmp_path):
    cancel = CancelToken()
    with pytest.raises(JobCancelled):
        for progress in synthesize(pipeline, ["a", "b", "c"], [0], tmp_path, steps=2, resolution=32, cancel=cancel):
            if progress.done == 1:
                cancel.cancel()
    assert [r.file for r in read_records(tmp_path)] == ["p000_s0.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p000_s0.png", RECORDS_FILE]
    resumed = list(synthesize(pipeline, ["a", "b", "c"], [0], tmp_path, steps=2, resolution=32))
    assert resumed[0].done == 1 and resumed[0].payload is None  # the one already made is skipped
    assert [p.done for p in resumed[1:]] == [2, 3]
    lines = (tmp_path / RECORDS_FILE).read_text().splitlines()
    assert [json.loads(line)["prompt"] for line in lines] == ["a", "b", "c"]


def test_prompt_sets(tmp_path):
    from training.phase2.pipeline import Phase2Config

    config = Phase2Config(base="b", images_dir="x")
    wanted = config.n_train_prompts + config.n_validation_prompts + config.n_heldout_prompts
    for kind in ("art", "face"):
        assert len(DEFAULT_PROMPTS[kind]) == wanted == 24 and all("<sks>" in p for p in DEFAULT_PROMPTS[kind])
        assert len(set(DEFAULT_PROMPTS[kind])) == 24
    assert all("sks" in p for p in default_prompts("face", "sks"))
    prompt_file = tmp_path / "prompts.txt"
    prompt_file.write_text("# mine\na {} at dawn\n\na <sks> at dusk\n", encoding="utf-8")
    assert load_prompts(str(prompt_file), "<v>") == ["a <v> at dawn", "a <v> at dusk"]
    with pytest.raises(ValueError):
        default_prompts("landscapes")


def test_seeds_are_shared_by_every_prompt_or_given_per_prompt():
    from training.phase2.pipeline import distinct_seeds

    assert seeds_per_prompt(["a", "b"], [3, 4]) == [[3, 4], [3, 4]]
    assert seeds_per_prompt(["a", "b"], [[3], [7, 8]]) == [[3], [7, 8]]
    with pytest.raises(ValueError):
        seeds_per_prompt(["a", "b"], [[3]])
    seeds = distinct_seeds(50_000, 3, 4)
    assert [len(own) for own in seeds] == [4, 4, 4] and len({s for own in seeds for s in own}) == 12
