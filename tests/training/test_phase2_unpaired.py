"""S and S_w from unpaired seeds, and the model-level verdict the Phase 2 report gives each model."""

from __future__ import annotations

import io
import json
from itertools import combinations
from pathlib import Path

import pytest
from PIL import Image

from tests.training.phase2_tiny import write_subject_images
from training.phase2.config import Phase2Config
from training.phase2.layout import RunLayout
from training.phase2.splits import split_seeds
from training.phase2.synthesize import RECORDS_FILE, image_name

KEY = b"phase2-verdict-test-key-00000000"


def layout(tmp_path: Path, **overrides: object) -> RunLayout:
    if not (tmp_path / "X").is_dir():
        write_subject_images(tmp_path / "X", n=2, size=32)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"prompt {i} of <sks>" for i in range(6)) + "\n")
    values: dict = dict(base="b", images_dir=str(tmp_path / "X"), out=str(tmp_path / "run"), prompts=str(prompts),
                        methods=("lora",), n_train_prompts=2, n_validation_prompts=1, n_heldout_prompts=2,
                        images_per_prompt=3, heldout_images_per_prompt=2)
    values.update(overrides)
    return RunLayout(Phase2Config(**values))


def flat(seeds: list[list[int]]) -> set[int]:
    return {seed for own in seeds for seed in own}


def test_every_split_of_every_model_has_seeds_of_its_own(tmp_path):
    run = layout(tmp_path)
    sets = {name: flat(seeds) for name, seeds in run.seeds.items()}
    assert all(len(s) == n for s, n in zip(sets.values(), [6, 6, 3, 3, 4, 4], strict=True))
    assert all(not a & b for a, b in combinations(sets.values(), 2))    # S and S_w share no seed, nor splits
    record = run.seeds_record()
    assert record["marked"]["heldout"] == run.seeds[("heldout", True)] != record["clean"]["heldout"]
    paired = layout(tmp_path, paired_seeds=True)                         # the pairing of earlier runs, on request
    assert all(paired.seeds[(split, True)] == paired.seeds[(split, False)] for split in ("train", "heldout"))
    # the extra held-out images a verdict measurement makes (training.miniature.verdict_power) are new too
    extra = [flat(split_seeds(0, "verdict", marked, 2, 40)) for marked in (False, True)]
    assert not extra[0] & extra[1] and all(not e & s for e in extra for s in sets.values())


def write_split(run: RunLayout, variant: str, split: str, images: list[Image.Image],
                seeds: list[list[int]] | None = None) -> list[Path]:
    """Write ``images`` as the synthesized set of a split, recorded under the run's (prompt, seed) pairs."""
    _, prompts, own = next(e for e in run.synth_splits(variant) if e[0] == split)
    pairs = [(i, prompt, seed) for i, (prompt, seeds_of) in enumerate(zip(prompts, seeds or own, strict=True))
             for seed in seeds_of]
    folder = run.synth_dir("lora", variant, split)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with open(folder / RECORDS_FILE, "a") as records:
        for (index, prompt, seed), image in zip(pairs, images, strict=True):
            name = image_name(index, seed)
            image.save(folder / name)
            records.write(json.dumps({"file": name, "prompt": prompt, "seed": seed, "steps": 2, "guidance": 1.0,
                                      "resolution": 32}) + "\n")
            paths.append(folder / name)
    return paths


def test_the_watermarked_models_set_is_read_at_its_own_seeds(tmp_path):
    """Images a paired run left in S_w's folder (the clean model's seeds) are not taken for this run's S_w."""
    run = layout(tmp_path)
    tiles = [Image.new("RGB", (32, 32), (10 * i, 0, 0)) for i in range(4)]
    write_split(run, run.marked_name, "heldout", tiles, seeds=run.seeds[("heldout", False)])
    assert run.split_images("lora", run.marked_name, "heldout") == []
    mine = write_split(run, run.marked_name, "heldout", tiles)
    assert set(run.split_images("lora", run.marked_name, "heldout")) == set(mine) and len(mine) == 4
    clean, marked = run.sets_of(["lora"], "heldout")
    assert clean == [] and set(marked) == set(mine)


@pytest.mark.slow
def test_the_report_gives_each_model_its_verdict_over_its_held_out_images(tmp_path, engine, model_dir):
    """The model personalized on X_w (here: its held-out images carry the watermark) gets a verdict at
    alpha 0.001, its clean twin none; n is the held-out count of each model."""
    from gwm_desktop.core.image_io import EncodeOptions, load_image
    from gwm_desktop.core.keys import message_from_key
    from gwm_desktop.core.watermark import Embedder
    from training.phase2.results import model_verdicts

    run = layout(tmp_path, model_dir=str(model_dir), heldout_images_per_prompt=3)
    originals = write_subject_images(tmp_path / "art", n=6, size=256, seed=3)
    embedder = Embedder(engine.bundle.generator, message_from_key(KEY, engine.bundle.n_bits), engine.lpips,
                        engine.device)
    marked = [Image.open(io.BytesIO(embedder.protect(load_image(p), 0.05, EncodeOptions(format="png")).data))
              for p in originals]
    write_split(run, "clean", "heldout", [Image.open(p) for p in originals])
    write_split(run, run.marked_name, "heldout", marked)
    verdicts = model_verdicts(run, KEY, "cpu")["lora"]
    assert verdicts["marked"]["n"] == verdicts["clean"]["n"] == 6          # 2 held-out prompts x 3 seeds
    assert verdicts["marked"]["verdict"] and verdicts["marked"]["p_value"] <= verdicts["marked"]["alpha"] == 0.001
    assert not verdicts["clean"]["verdict"] and verdicts["clean"]["p_value"] > 0.001


def test_a_model_without_readable_held_out_images_gets_no_verdict_and_the_report_says_so(tmp_path, model_dir):
    from training.phase2.report import _verdict_lines
    from training.phase2.results import model_verdicts

    run = layout(tmp_path, model_dir=str(model_dir), heldout_images_per_prompt=3)
    verdicts = model_verdicts(run, KEY, "cpu")
    assert verdicts["lora"] == {"marked": None, "clean": None}
    text = "\n".join(_verdict_lines(verdicts))
    assert "No model had readable held-out images" in text
    one = {"lora": {"marked": None, "clean": {"n": 6, "p_value": 0.5, "effect_z": 0.1, "verdict": False,
                                                 "alpha": 0.001}}}
    assert "| lora | personalized on X_w | 0 | n/a | n/a | no readable held-out images |" in _verdict_lines(one)
