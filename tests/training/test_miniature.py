"""The miniature world: its parts behave like Stable Diffusion's, and the one command runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training.miniature.data import (
    INSTANCE_PROMPT,
    SUBJECT_PROMPTS,
    CorpusItem,
    all_caption_words,
    caption,
    measure,
    prepare_subject,
)
from training.miniature.text_encoder import build_text_encoder, build_tokenizer

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (SHARED / "portraits").is_dir() or not (SHARED / "paintings").is_dir(),
                                reason="shared data set (../shared/data) not present")


def test_every_vocabulary_word_is_one_token_and_prompts_fit() -> None:
    tokenizer = build_tokenizer(all_caption_words())
    for word in all_caption_words():
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    for prompt in SUBJECT_PROMPTS:
        ids = tokenizer(prompt.replace("{}", "<sks>")).input_ids
        assert len(ids) <= tokenizer.model_max_length
        assert tokenizer.eos_token_id not in ids[1:-1], f"unknown word in {prompt!r}"
    # Textual Inversion adds its placeholder as one new token, as with SD's CLIP tokenizer.
    assert tokenizer.add_tokens("<sks>") == 1
    assert len(tokenizer(INSTANCE_PROMPT, add_special_tokens=False).input_ids) == 7


def test_text_encoder_gives_different_states_to_different_captions() -> None:
    tokenizer = build_tokenizer(all_caption_words())
    encoder = build_text_encoder(tokenizer, hidden_size=32, layers=1, heads=2).eval()
    ids = tokenizer(["a photo of a person", "a painting of a cat"], padding="max_length",
                    max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        states = encoder(ids)[0]
    assert states.shape == (2, tokenizer.model_max_length, 32)
    assert not torch.allclose(states[0], states[1])


def test_captions_follow_measured_image_statistics() -> None:
    grey = np.full((64, 64, 3), 200, dtype=np.uint8)
    colour = np.zeros((64, 64, 3), dtype=np.uint8)
    colour[..., 0] = 90
    assert measure(grey) == (True, "light")
    assert measure(colour) == (False, "dark")
    import random

    item = CorpusItem(grey, "photo", True, "light")
    captions = {caption(item, random.Random(seed)) for seed in range(200)}
    assert any("black and white" in c for c in captions)
    assert not any(" colour " in f" {c} " for c in captions)
    words = set(all_caption_words())
    assert all(set(c.split()) <= words for c in captions)


def test_a_cached_base_model_pretrained_for_other_steps_is_refused(tmp_path: Path) -> None:
    """Reusing a cached prior of another length would silently measure another world."""
    from training.miniature.prior import PriorConfig
    from training.miniature.world import PRIOR_RECORD, WorldConfig, ensure_base_pipeline, prior_steps_of

    base = tmp_path / "base_pipeline"
    base.mkdir()
    (base / "model_index.json").write_text("{}")
    world = WorldConfig(out=tmp_path)
    assert prior_steps_of(base) == 1000  # saved before the record existed: the default of that time
    with pytest.raises(ValueError, match="--prior-steps 1000"):
        ensure_base_pipeline(world, PriorConfig(steps=6000), tmp_path / "vae")
    (base / PRIOR_RECORD).write_text(json.dumps({"steps": 6000}))
    assert ensure_base_pipeline(world, PriorConfig(steps=6000), tmp_path / "vae") == base


@needs_data
def test_subject_images_are_square_and_listed(tmp_path: Path) -> None:
    written = prepare_subject(SHARED / "paintings", tmp_path / "subject" / "X", count=3, size=64)
    from PIL import Image

    assert [Image.open(p).size for p in written] == [(64, 64)] * 3
    listed = json.loads((tmp_path / "subject" / "subject_files.json").read_text())
    assert len(listed["files"]) == 3


@pytest.mark.slow
@needs_data
def test_quick_world_runs_end_to_end(tmp_path: Path) -> None:
    """One method at toy size: corpus -> autoencoder -> prior pipeline -> watermark model -> Phase 2 report."""
    from diffusers import StableDiffusionPipeline

    from training.miniature.run import quick_config, render_summary, run

    cfg = quick_config(tmp_path / "mini", threads=2)
    cfg.methods = ("lora",)
    cfg.quarter_methods = ()
    summary = run(cfg)

    pipeline = StableDiffusionPipeline.from_pretrained(str(tmp_path / "mini" / "base_pipeline"),
                                                       local_files_only=True, safety_checker=None,
                                                       requires_safety_checker=False)
    assert pipeline.vae_scale_factor == 4           # a latent autoencoder with 4x downsampling, like SD's 8x
    report = summary["phase2_full"]
    for detector in ("phase1_detector", "phase2_detector"):
        metrics = report[detector]["lora"]
        assert metrics["n_clean"] > 0 and metrics["n_marked"] > 0
        assert 0.0 <= metrics["auc"] <= 1.0
    heldout = report["phase2_detector"]["lora"]["n_marked"]
    verdict = summary["verdicts"]["full"]["lora"]                # each model's, over its held-out images
    assert verdict["marked"]["n"] == verdict["clean"]["n"] == heldout and summary["verdicts"]["quarter"] is None
    assert "Model-level verdict" in render_summary(summary)
    assert set(summary["subject_fidelity"]["models"]["lora"]) == {"clean", "marked"}   # how much it learned
    assert "Subject learned" in render_summary(summary)
    # the subject never enters the corpus: the corpus cache holds only photos, filtered photos and samples
    corpus = torch.load(next((tmp_path / "mini" / "corpus").glob("*.pt")), weights_only=False)
    assert {item.kind for item in corpus["train"]} <= {"photo", "painting", "object"}
    assert (tmp_path / "mini" / "summary_quick.json").exists()

    # the verdict's power and false-alarm measurement runs on the finished world, from its recorded config
    from training.miniature.verdict_power import main as verdict_power

    out = tmp_path / "power.json"
    assert verdict_power([str(tmp_path / "mini"), "--images", "4", "--sizes", "2,4", "--bound-sizes", "2",
                          "--sets", "20", "--null-keys", "200", "--null-draws", "3", "--threads", "2",
                          "--json", str(out)]) == 0
    power = json.loads(out.read_text())
    rows = power["models"][str(tmp_path / "mini")]["lora"]
    assert rows["marked"]["images"] == rows["clean"]["images"] == 4
    assert set(rows["clean"]) >= {"2", "4", "all_images"} and rows["marked"]["2"]["sets"] == 20
    fresh = power["bound"]["fresh random keys"]["2"]
    assert fresh["sets"] == 3 * 20 and len(fresh["per_draw"]["0.01"]) == 3 and 0 <= fresh["0.001"]["share"] <= 1
    assert power["bound"]["the runs' key"]["2"]["sets"] == 20      # one key, the app's own null table
    made = sorted((tmp_path / "mini" / "phase2" / "synth" / "lora" / "clean" / "verdict").glob("*.png"))
    assert len(made) == 4           # cached beside the run's own splits, on seeds none of them used

    # the same figures from the command line; the base model's samples made for the same records
    from training.miniature.subject_fidelity import main as subject_fidelity

    assert subject_fidelity([str(tmp_path / "mini"), "--json", str(tmp_path / "fidelity.json")]) == 0
    synth = tmp_path / "mini" / "phase2" / "synth"
    assert ({p.name for p in (synth / "base" / "clean" / "heldout").glob("*.png")}
            == {p.name for p in (synth / "lora" / "clean" / "heldout").glob("*.png")})
    fidelity = json.loads((tmp_path / "fidelity.json").read_text())[str(tmp_path / "mini")]
    assert set(fidelity["models"]["lora"]) == {"clean", "marked"} and fidelity["base"] > 0


def test_personalization_overrides_parse_numbers_and_refuse_unknown_methods(tmp_path: Path) -> None:
    from training.miniature.run import full_config, override_personalization

    cfg = full_config(tmp_path, threads=1)
    override_personalization(cfg, "dreambooth.learning_rate=1e-4")
    override_personalization(cfg, "lora.lora_rank=16")
    assert cfg.personalization["dreambooth"]["learning_rate"] == 1e-4
    assert cfg.personalization["dreambooth"]["train_steps"] == 400      # the rest is kept
    assert cfg.personalization["lora"]["lora_rank"] == 16 and isinstance(cfg.personalization["lora"]["lora_rank"], int)
    with pytest.raises(SystemExit):
        override_personalization(cfg, "dreamboth.learning_rate=1e-4")


def test_phase2_overrides_reach_the_phase2_config_and_refuse_unknown_fields(tmp_path: Path) -> None:
    from training.miniature.run import full_config, override_phase2, phase2_config

    cfg = full_config(tmp_path, threads=1)
    override_phase2(cfg, "images_per_prompt=16")
    override_phase2(cfg, "joint_detector=false")
    override_phase2(cfg, "finetune_lr=3e-4")
    override_phase2(cfg, "p=0.01")    # one the miniature also sets: the override wins
    override_phase2(cfg, "seed=1")
    for before_issue_14 in ("random_flip=false", "center_crop=true", "paired_seeds=true"):
        override_phase2(cfg, before_issue_14)
    config = phase2_config(cfg, tmp_path / "base", tmp_path / "X", tmp_path / "wm", tmp_path / "key", 1.0, ("lora",))
    assert (config.images_per_prompt, config.joint_detector, config.finetune_lr) == (16, False, 3e-4)
    assert (config.p, config.seed, config.tag) == (0.01, 1, "_p0.01")
    assert config.n_validation_prompts == 4                            # the rest is kept
    augmentation = config.personalize_config("lora").augmentation()
    assert augmentation == {"random_flip": False, "crop": "center"} and config.paired_seeds
    for wrong in ("images_per_promt=16", "methods=lora", "watermark_fraction=0.5"):
        with pytest.raises(SystemExit):
            override_phase2(cfg, wrong)


def test_watermark_overrides_give_longer_runs_folders_of_their_own(tmp_path: Path) -> None:
    from training.miniature.run import full_config, override_watermark

    cfg = full_config(tmp_path, threads=1)
    assert (cfg.watermark.tag, cfg.watermark.autoencoder_tag) == ("b16_t64_f3.5-15", "_ae")
    override_watermark(cfg, "band_low=3.5")
    override_watermark(cfg, "band_high=12")
    assert cfg.watermark.tag == "b16_t64"   # the first band: the folders of the worlds measured before it moved
    override_watermark(cfg, "steps=4000")
    override_watermark(cfg, "autoencoder_steps=1000")
    assert (cfg.watermark.steps, cfg.watermark.autoencoder_steps, cfg.watermark.batch_size) == (4000, 1000, 16)
    assert (cfg.watermark.tag, cfg.watermark.autoencoder_tag) == ("b16_t64_s4000", "_ae1000")
    for wrong in ("step=4000", "steps"):
        with pytest.raises(SystemExit):
            override_watermark(cfg, wrong)


@pytest.mark.parametrize("signed", [False, True], ids=["plain G (earlier runs)", "key-signed G"])
def test_matched_filter_check_tells_in_place_watermarks_from_clean_samples(tmp_path: Path, signed: bool) -> None:
    from PIL import Image

    from gwm_desktop.core.keys import message_from_key
    from gwm_desktop.core.models import networks_for_size
    from gwm_desktop.core.textures import FIRST_BAND
    from gwm_desktop.core.weights import save_model
    from training.miniature.matched_filter_check import main, scores

    # earlier runs: one 64 px tile, 16 bits, the first band
    generator, detector = networks_for_size(64, 16, 64, isotropic=False, band=FIRST_BAND)
    if signed:
        from training.matched_filter import with_matched_filter

        generator, detector = with_matched_filter(generator, detector)
    save_model(tmp_path / "watermark64_b16_t64_ae" / "model", generator, detector)
    key = b"k" * 32
    (tmp_path / "subject.key").write_bytes(key)
    message = message_from_key(key, 16)[None]
    freq = torch.fft.fftfreq(64)
    radius = torch.sqrt(freq[:, None] ** 2 + freq[None, :] ** 2).clamp_min(1 / 64)
    for variant, strength in (("clean", 0.0), ("marked", 1.5)):
        folder = tmp_path / "phase2" / "synth" / "dreambooth" / variant / "heldout"
        folder.mkdir(parents=True)
        for seed in range(6):
            noise = torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(seed + 10 * (strength > 0)))
            x = (0.5 + 0.15 * torch.fft.ifft2(torch.fft.fft2(noise) / radius).real / 8).clamp(0, 1)[None]
            with torch.no_grad():
                x = (x + strength * generator(x, message)).clamp(0, 1)
            pixels = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"s{seed}.png")
    result = scores(tmp_path, "dreambooth")
    assert result["n"] == 12 and result["linear"] == 1.0 and result["agreement"] == 1.0
    assert result["phase1_combined"] == 1.0 and "phase2_cnn" not in result  # no Phase 2 detector here
    assert main([str(tmp_path), "dreambooth"]) == 0


def test_subject_fidelity_places_a_set_between_the_base_model_and_the_subject(tmp_path: Path) -> None:
    """Samples that are the subject's own images score past 100%, the base model's samples 0%, and a
    set between them in between; the base set is read from its cache (no pipeline is loaded)."""
    from PIL import Image

    from training.miniature.subject_fidelity import score_run
    from training.phase2.synthesize import RECORDS_FILE, SynthRecord

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 32)
    subject = [np.clip(ramp[None, :, None] * rng.uniform(0.3, 1, 3) + rng.normal(0, 8, (32, 32, 3)), 0, 255)
               for _ in range(4)]
    noise = [rng.uniform(0, 255, (32, 32, 3)) for _ in range(4)]
    run = tmp_path / "run"
    sets = {"subject/X": subject, "phase2/synth/dreambooth/clean/heldout": subject,
            "phase2/synth/base/clean/heldout": noise,
            "phase2/synth/dreambooth/marked/heldout": [(a + b) / 2 for a, b in zip(subject, noise, strict=True)]}
    for folder, images in sets.items():
        (run / folder).mkdir(parents=True)
        for index, image in enumerate(images):
            Image.fromarray(image.astype(np.uint8)).save(run / folder / f"p000_s{index}.png")
    records = [json.dumps(SynthRecord(f"p000_s{i}.png", "a painting", i, 2, 7.5, 32).__dict__) for i in range(4)]
    (run / "phase2/synth/dreambooth/clean/heldout" / RECORDS_FILE).write_text("\n".join(records) + "\n")

    from gwm_desktop.core.lpips_metric import cached_lpips

    result = score_run(run, cached_lpips())
    figures = result["models"]["dreambooth"]
    assert result["size"] == 32 and 0 < result["subject_loo"] < result["base"]
    assert figures["clean"]["distance"] == pytest.approx(0.0, abs=1e-6) and figures["clean"]["learned"] > 1.0
    assert 0.0 < figures["marked"]["learned"] < figures["clean"]["learned"]
    assert figures["marked"]["n"] == 4
