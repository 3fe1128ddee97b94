"""Personalization on a tiny pipeline: what each method may change, reload, resume and cancel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gwm_desktop.core.jobs import CancelToken, JobCancelled
from tests.training.phase2_tiny import (
    PLACEHOLDER,
    save_tiny_pipeline,
    write_subject_images,
)
from training.phase2.personalize import (
    EMBEDS_FILE,
    MANIFEST,
    PersonalizeConfig,
    Personalizer,
    is_personalized,
    load_base_pipeline,
    load_personalized,
)
from training.phase2.synthesize import read_records, regenerate


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("phase2_personalize")
    base = save_tiny_pipeline(root / "base")
    images = root / "X"
    write_subject_images(images, n=3, size=40)
    return {"root": root, "base": base, "images": images}


def tiny_config(method: str, **overrides) -> PersonalizeConfig:
    values = dict(method=method, resolution=32, train_steps=3, device="cpu", validation_steps=2,
                  checkpoint_every=0, seed=0)
    values.update(overrides)
    return PersonalizeConfig(**values)


def train(world, method: str, out: str, cancel: CancelToken | None = None, **overrides) -> tuple[Personalizer, list]:
    trainer = Personalizer(world["base"], world["images"], world["root"] / out, tiny_config(method, **overrides),
                           cancel)
    return trainer, list(trainer.run())


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def assert_reloads_validation(world, out: Path, method: str) -> None:
    """load_personalized (from disk) regenerates the sample the trained model made in memory."""
    record = read_records(out / "validation")[0]
    pipeline = load_personalized(world["base"], out, tiny_config(method), "cpu")
    again = np.asarray(regenerate(pipeline, record).convert("RGB"), dtype=np.int16)
    assert np.abs(again - pixels(out / "validation" / record.file)).max() <= 1


def test_textual_inversion_trains_only_the_placeholder_row(world):
    trainer, progress = train(world, "textual_inversion", "ti", learning_rate=5e-2)
    assert [p.done for p in progress if p.payload and "loss" in p.payload] == [1, 2, 3]
    base = load_base_pipeline(world["base"])
    before = base.text_encoder.get_input_embeddings().weight
    after = trainer.text_encoder.get_input_embeddings().weight.detach()
    token_id = trainer.placeholder_id
    assert token_id == before.shape[0]  # a new token, as with a real CLIP vocabulary
    assert torch.equal(after[:token_id], before)  # every other row bit-identical
    init_id = base.tokenizer.encode("painting", add_special_tokens=False)[0]
    assert not torch.allclose(after[token_id], before[init_id])  # the placeholder moved off its initializer
    for name, param in trainer.unet.state_dict().items():
        assert torch.equal(param, base.unet.state_dict()[name]), name
    out = world["root"] / "ti"
    assert (out / EMBEDS_FILE).exists() and not (out / "unet").exists()
    assert_reloads_validation(world, out, "textual_inversion")


def test_lora_leaves_base_weights_untouched_and_adapter_reloads(world):
    trainer, _ = train(world, "lora", "lora", learning_rate=1e-2)
    base = load_base_pipeline(world["base"])
    base_state = base.unet.state_dict()
    trained = trainer.unet.state_dict()
    lora_keys = [k for k in trained if "lora" in k]
    assert lora_keys and any(float(trained[k].abs().max()) > 0 for k in lora_keys if "lora_B" in k)
    for name, value in trained.items():
        if "lora" not in name:
            original = base_state[name.replace(".base_layer", "")]
            assert torch.equal(value, original), name
    out = world["root"] / "lora"
    assert_reloads_validation(world, out, "lora")
    record = read_records(out / "validation")[0]
    untouched = np.asarray(regenerate(base, record).convert("RGB"), dtype=np.int16)
    assert np.abs(untouched - pixels(out / "validation" / record.file)).max() > 0  # the adapter does something


def test_wider_lora_targets_adapt_feed_forward_and_convolutions_and_reload(world):
    trainer, _ = train(world, "lora", "lora_wide", learning_rate=1e-2, lora_targets="transformer_conv")
    adapted = [k for k in trainer.unet.state_dict() if "lora_A" in k]
    for layer in ("to_q", "ff.net.2", "proj_in", "resnets.0.conv1"):
        assert any(layer in k for k in adapted), layer
    assert_reloads_validation(world, world["root"] / "lora_wide", "lora")  # diffusers reads the wider adapter back
    with pytest.raises(ValueError, match="lora_targets"):
        tiny_config("lora", lora_targets="everything").validate()


def test_dreambooth_changes_the_unet_and_reloads(world):
    _, _ = train(world, "dreambooth", "db", learning_rate=1e-3)
    out = world["root"] / "db"
    base = load_base_pipeline(world["base"])
    tuned = load_personalized(world["base"], out, tiny_config("dreambooth"), "cpu")
    changed = [name for name, value in tuned.unet.state_dict().items()
               if not torch.equal(value, base.unet.state_dict()[name])]
    assert len(changed) > 10
    assert torch.equal(tuned.text_encoder.get_input_embeddings().weight,
                       base.text_encoder.get_input_embeddings().weight)
    assert_reloads_validation(world, out, "dreambooth")


def test_prior_preservation_makes_class_images_with_the_base_model(world):
    class_dir = world["root"] / "class_images"
    _, progress = train(world, "dreambooth", "db_prior", prior_preservation=True, class_prompt="a painting",
                        class_images_dir=str(class_dir), num_class_images=2, train_steps=1, validation_images=0)
    assert sorted(p.name for p in class_dir.glob("*.png")) == ["p000_s0.png", "p000_s1.png"]
    assert {r.prompt for r in read_records(class_dir)} == {"a painting"}
    assert is_personalized(world["root"] / "db_prior")


def test_cancel_leaves_no_output_and_resume_continues_from_the_checkpoint(world):
    straight, _ = train(world, "textual_inversion", "ti_straight", train_steps=4, validation_images=0)
    expected = straight.trainable_state()["placeholder_embedding"]

    cancel = CancelToken()
    out = world["root"] / "ti_resume"
    trainer = Personalizer(world["base"], world["images"], out,
                           tiny_config("textual_inversion", train_steps=4, checkpoint_every=2, validation_images=0),
                           cancel)
    with pytest.raises(JobCancelled):
        for progress in trainer.run():
            if progress.payload and progress.payload.get("step") == 3:
                cancel.cancel()
    assert not (out / MANIFEST).exists() and not (out / EMBEDS_FILE).exists()
    assert [c.name for c in (out / "checkpoints").glob("step_*.pt")] == ["step_000002.pt"]
    assert not [p for p in out.iterdir() if p.name.startswith(".staging")]
    with pytest.raises(FileNotFoundError):
        load_personalized(world["base"], out, None, "cpu")

    resumed = Personalizer(world["base"], world["images"], out,
                           tiny_config("textual_inversion", train_steps=4, checkpoint_every=2, validation_images=0,
                                       resume="latest"))
    steps = [p.payload["step"] for p in resumed.run() if p.payload and "step" in p.payload]
    assert steps == [3, 4]
    assert torch.allclose(resumed.trainable_state()["placeholder_embedding"], expected, atol=1e-6)
    assert is_personalized(out)


def test_load_base_pipeline_refuses_what_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_base_pipeline(tmp_path / "empty")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="safetensors"):
        load_base_pipeline(tmp_path / "weights.bin")
    with pytest.raises(FileNotFoundError):
        load_base_pipeline("./no/such/model")


def test_config_defaults_follow_the_community_recipes():
    assert PersonalizeConfig("dreambooth").resolved_learning_rate() == 5e-6
    assert PersonalizeConfig("lora").resolved_learning_rate() == 1e-4
    ti = PersonalizeConfig("textual_inversion", batch_size=2, gradient_accumulation=4)
    assert ti.resolved_learning_rate() == pytest.approx(5e-4 * 8)  # scaled, as diffusers' example does
    assert PersonalizeConfig("lora", placeholder_token=PLACEHOLDER).resolved_steps() == 500
    with pytest.raises(ValueError):
        PersonalizeConfig("dreambooth", prior_preservation=True).validate()


def test_a_personalization_written_before_a_setting_existed_is_still_current(tmp_path):
    import json
    from dataclasses import asdict

    from training.phase2.cache import personalization_current
    from training.phase2.loading import MANIFEST

    config = PersonalizeConfig("dreambooth", learning_rate=1e-4, center_crop=True)  # an old folder's crop
    saved = asdict(config)
    del saved["lora_targets"]                       # a folder from before lora_targets existed
    (tmp_path / MANIFEST).write_text(json.dumps({"method": "dreambooth", "config": saved}))
    assert personalization_current(tmp_path, config)
    assert not personalization_current(tmp_path, PersonalizeConfig("dreambooth", learning_rate=2e-4,
                                                                   center_crop=True))
    assert not personalization_current(tmp_path, PersonalizeConfig("dreambooth", learning_rate=1e-4,
                                                                   center_crop=True, lora_targets="transformer"))


def test_lora_runs_are_reproducible_and_a_method_seed_reaches_the_personalization(world):
    """The adapters' random init follows the seed (it used the global RNG, so two identical runs
    differed), and a per-method seed override is not replaced by the run's seed."""
    from training.phase2.pipeline import Phase2Config, Phase2Run

    def adapters(out: str, seed: int) -> dict[str, torch.Tensor]:
        trainer, _ = train(world, "lora", out, learning_rate=1e-2, train_steps=1, validation_images=0, seed=seed)
        return {k: v for k, v in trainer.unet.state_dict().items() if "lora_A" in k}

    torch.manual_seed(123)  # whatever the global RNG holds, the run does not depend on it
    first = adapters("lora_seed0_a", 0)
    torch.manual_seed(456)
    again, other = adapters("lora_seed0_b", 0), adapters("lora_seed1", 1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    config = Phase2Config(base=str(world["base"]), images_dir=str(world["images"]), out=str(world["root"] / "p2"),
                          methods=("lora", "dreambooth"), seed=5, method_overrides={"lora": {"seed": 1}})
    run = Phase2Run(config)
    assert run.personalize_config_for("lora").seed == 1 and run.personalize_config_for("dreambooth").seed == 5
