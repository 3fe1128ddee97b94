"""Training augmentations (diffusers' random flip and random crop) reach every method's batches, and
a personalization made with other augmentations is not reused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests.training.phase2_tiny import save_tiny_pipeline
from training.phase2 import latent_data
from training.phase2.cache import personalization_current
from training.phase2.loading import MANIFEST
from training.phase2.personalize import PersonalizeConfig, Personalizer
from training.phase2_methods import METHODS

SIDE = 32       # training resolution; the subject image is SIDE x 2 SIDE, so a crop can start at 0..SIDE
STEP = 4        # grey levels per column: column x holds 4 x exactly, so a crop tells where it started


def write_ramp(folder: Path, width: int) -> Path:
    folder.mkdir()
    ramp = np.tile((np.arange(width) * STEP).astype(np.uint8), (SIDE, 1))
    Image.fromarray(np.stack([ramp] * 3, axis=-1)).save(folder / "ramp.png")
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("phase2_augmentation")
    return {"root": root, "base": save_tiny_pipeline(root / "base"), "images": write_ramp(root / "X", 2 * SIDE),
            "square": write_ramp(root / "square", SIDE)}


def config(method: str, **overrides: Any) -> PersonalizeConfig:
    values: dict[str, Any] = dict(method=method, resolution=SIDE, train_steps=6, batch_size=2, device="cpu",
                                     checkpoint_every=0, validation_images=0, seed=0)
    values.update(overrides)
    return PersonalizeConfig(**values)


def encoded_crops(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch, cfg: PersonalizeConfig,
                  out: str, images: str = "images") -> list[tuple[int, bool]]:
    """Train; return (left edge, flipped) of every image the VAE encoded for training."""
    seen: list[torch.Tensor] = []
    encode = latent_data.encode_latent_distribution

    def spy(vae: Any, pixels: torch.Tensor, batch: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(pixels.clone())
        return encode(vae, pixels, batch)

    monkeypatch.setattr(latent_data, "encode_latent_distribution", spy)
    list(Personalizer(world["base"], world[images], world["root"] / out, cfg).run())
    crops = []
    for image in torch.cat(seen):
        columns = torch.round((image[0, 0] + 1) * 127.5 / STEP).long()   # the first row's column indices
        flipped = bool(columns[0] > columns[-1])
        left = int(columns.min())
        expected = torch.arange(left, left + SIDE)
        assert torch.equal(columns, expected.flip(0) if flipped else expected)  # a true crop of the image
        crops.append((left, flipped))
    return crops


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_on_flipped_and_randomly_cropped_images_by_default(world, monkeypatch, method):
    crops = encoded_crops(world, monkeypatch, config(method), f"{method}_default")
    assert len(crops) == 6 * 2                              # one fresh crop per image of every batch
    assert {flipped for _, flipped in crops} == {True, False}
    assert len({left for left, _ in crops}) >= 3            # crops start at several places
    record = json.loads((world["root"] / f"{method}_default" / MANIFEST).read_text())
    assert record["augmentation"] == {"random_flip": True, "crop": "random"}


def test_augmentations_turned_off_give_the_centre_crop_unflipped(world, monkeypatch):
    crops = encoded_crops(world, monkeypatch, config("lora", random_flip=False, center_crop=True), "lora_off")
    assert crops == [(SIDE // 2, False)]                    # encoded once, before training: the centre


def test_square_images_have_one_crop_so_it_and_its_mirror_are_encoded_once(world, monkeypatch):
    crops = encoded_crops(world, monkeypatch, config("dreambooth"), "dreambooth_square", images="square")
    assert crops == [(0, False), (0, True)]                 # a draw from the two flips half the time


def test_a_personalization_with_other_augmentations_is_not_reused(world):
    folder = world["root"] / "lora_cached"
    cfg = config("lora")
    list(Personalizer(world["base"], world["images"], folder, cfg).run())
    assert personalization_current(folder, config("lora"))
    assert not personalization_current(folder, config("lora", random_flip=False))
    assert not personalization_current(folder, config("lora", center_crop=True))
    # A folder from before augmentations were recorded: center_crop off then meant a fixed corner.
    record = json.loads((folder / MANIFEST).read_text())
    del record["augmentation"]
    (folder / MANIFEST).write_text(json.dumps(record))
    assert not personalization_current(folder, config("lora"))


def test_a_checkpoint_left_with_other_augmentations_is_not_resumed(world):
    folder = world["root"] / "lora_resume"
    list(Personalizer(world["base"], world["images"], folder,
                      config("lora", train_steps=4, checkpoint_every=2, random_flip=False)).run())
    assert list((folder / "checkpoints").iterdir())                 # step 2's checkpoint stays

    def steps_run(cfg: PersonalizeConfig) -> int:
        return sum(1 for p in Personalizer(world["base"], world["images"], folder, cfg).run()
                   if (p.payload or {}).get("step"))

    assert steps_run(config("lora", train_steps=4, resume="latest")) == 4                     # afresh
    assert steps_run(config("lora", train_steps=4, random_flip=False, resume="latest")) == 2  # resumed


def fake_personalization(folder: Path, cfg: PersonalizeConfig) -> None:
    from dataclasses import asdict

    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).write_text(json.dumps({"method": cfg.method, "config": asdict(cfg),
                                               "augmentation": cfg.augmentation()}))


def test_a_remade_personalization_drops_its_old_images_and_refits_its_detectors(tmp_path, monkeypatch):
    from tests.training.phase2_tiny import write_subject_images
    from training.phase2 import pipeline
    from training.phase2.pipeline import Phase2Config, Phase2Run

    write_subject_images(tmp_path / "X", n=2, size=32)
    run = Phase2Run(Phase2Config(base="b", images_dir=str(tmp_path / "X"), out=str(tmp_path / "run"),
                                 methods=("lora",), n_train_prompts=2, n_heldout_prompts=2, n_validation_prompts=1))
    for variant in ("clean", run.marked_name):
        fake_personalization(run.model_dir("lora", variant), run.personalize_config_for("lora"))
        stale = run.synth_dir("lora", variant, "heldout")
        stale.mkdir(parents=True)
        (stale / "old.png").write_bytes(b"png")
    stamp = run.detector_settings(["lora"])
    monkeypatch.setattr(pipeline, "personalize", lambda *args: iter(()))
    list(run.personalize_all())                                       # both current: images kept
    assert (run.synth_dir("lora", "clean", "heldout") / "old.png").exists()
    older = PersonalizeConfig(**{**vars(run.personalize_config_for("lora")), "random_flip": False})
    fake_personalization(run.model_dir("lora", run.marked_name), older)
    assert run.detector_settings(["lora"]) != stamp                   # its detectors are fine-tuned again
    list(run.personalize_all())                                       # X_w's model is made again
    assert not run.synth_dir("lora", run.marked_name, "heldout").exists()
    assert (run.synth_dir("lora", "clean", "heldout") / "old.png").exists()
