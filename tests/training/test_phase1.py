"""Phase 1 trains, checkpoints, resumes and exports a model the app can load."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gwm_desktop.core.weights import load_model
from training.checkpoints import latest_checkpoint
from training.datasets import list_images, split_of
from training.phase1 import Phase1Trainer, main
from training.phase1_config import parse_args


@pytest.fixture
def tiny_corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        base = np.linspace(0, 255, 64)[None, :, None] * rng.uniform(0.3, 1, (1, 1, 3))
        noise = rng.normal(0, 12, (64, 64, 3))
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(folder / f"img_{i:03d}.png")
    return folder


def test_split_is_stable_and_disjoint(tiny_corpus):
    train = set(list_images([tiny_corpus], "train"))
    held_out = set(list_images([tiny_corpus], "eval")) | set(list_images([tiny_corpus], "calibration"))
    assert train and held_out and not train & held_out
    assert all(split_of(p) == "train" for p in train)


def test_train_checkpoint_resume_and_export(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    args = ["--data", str(tiny_corpus), "--out", str(out), "--working-size", "64", "--batch-size", "4",
            "--steps", "2", "--checkpoint-every", "1", "--warmup-steps", "4", "--device", "cpu"]
    assert main(args) == 0
    assert latest_checkpoint(out / "checkpoints").name == "step_000002.pt"
    resumed = Phase1Trainer(parse_args([*args[:-6], "--steps", "3", "--resume", "latest", "--device", "cpu"]))
    assert resumed.step == 2
    progress = list(resumed.run())
    assert [p.done for p in progress] == [3]
    bundle = load_model(out / "model")
    assert bundle.detector.working_size == 64
    # Exported as shipped: key signs on, G's trained textures in D's matched filter.
    assert bundle.generator.signed and bundle.detector.matched_filter
    assert torch.equal(bundle.detector.templates, bundle.generator.textures().detach()[:, 0])
    assert bundle.manifest["training"]["command"].startswith("gwm train phase1 --data")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3]
    assert {"loss_d", "loss_g", "lpips", "bit_acc"} <= set(log[0])


def test_a_fresh_model_with_its_own_band_keeps_it_through_export_and_loading(tiny_corpus, tmp_path):
    import math

    from gwm_desktop.core.textures import pattern_frequencies
    from training.export_checkpoint import export_checkpoint

    out = tmp_path / "band"
    assert main(["--data", str(tiny_corpus), "--out", str(out), "--working-size", "128", "--batch-size", "2",
                 "--steps", "1", "--checkpoint-every", "1", "--device", "cpu", "--n-bits", "8",
                 "--band-low", "5", "--band-high", "13"]) == 0
    export_checkpoint(latest_checkpoint(out / "checkpoints"), tmp_path / "again")
    for folder in (out / "model", tmp_path / "again"):
        bundle = load_model(folder)
        assert bundle.manifest["architecture"]["band"] == [5 / 128, 13 / 128]
        assert bundle.generator.band == bundle.detector.band == (5 / 128, 13 / 128)
        tile = bundle.generator.tile   # 64 px at a 128 px frame: 2.5 to 6.5 cycles a tile
        radii = [math.hypot(u, v) for u, v in pattern_frequencies(8, tile, mirrored=True, band=bundle.detector.band)]
        assert min(radii) >= 2.5 and max(radii) <= 6.5
        assert radii != [math.hypot(u, v) for u, v in pattern_frequencies(8, tile, mirrored=True)]
    with pytest.raises(SystemExit, match="band-low"):
        Phase1Trainer(parse_args(["--data", str(tiny_corpus), "--out", str(tmp_path / "bad"), "--device", "cpu",
                                  "--band-low", "12", "--band-high", "6"]))
    # resuming at another band would load textures into networks made for other frequencies
    with pytest.raises(SystemExit, match="resume it with --band-low 5 --band-high 13"):
        Phase1Trainer(parse_args(["--data", str(tiny_corpus), "--out", str(out), "--working-size", "128",
                                  "--n-bits", "8", "--device", "cpu", "--resume", "latest"]))


def test_fine_tuning_a_matched_model_refreshes_its_templates_and_exports_checkpoints(tiny_corpus, tmp_path):
    from training.export_checkpoint import export_checkpoint

    first = tmp_path / "first"
    base = ["--data", str(tiny_corpus), "--working-size", "64", "--batch-size", "4", "--warmup-steps", "4",
            "--device", "cpu"]
    assert main([*base, "--out", str(first), "--steps", "1"]) == 0
    tuned = tmp_path / "tuned"
    assert main([*base, "--out", str(tuned), "--steps", "2", "--checkpoint-every", "1",
                 "--init-from", str(first / "model")]) == 0
    before, after = load_model(first / "model"), load_model(tuned / "model")
    assert after.generator.signed and after.detector.matched_filter
    assert not torch.equal(after.generator.patterns, before.generator.patterns)  # G trained on
    assert torch.equal(after.detector.templates, after.generator.textures().detach()[:, 0])  # D follows it
    exported = export_checkpoint(latest_checkpoint(tuned / "checkpoints"), tmp_path / "from_checkpoint")
    assert exported["architecture"]["matched_filter"]
    again = load_model(tmp_path / "from_checkpoint")
    assert torch.equal(again.detector.templates, again.generator.textures().detach()[:, 0])


def test_only_amplitude_moves_where_the_watermark_goes_and_nothing_a_scan_reads(tiny_corpus, tmp_path):
    base = ["--data", str(tiny_corpus), "--working-size", "64", "--batch-size", "4", "--warmup-steps", "0",
            "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "first"), "--steps", "1"]) == 0
    assert main([*base, "--out", str(tmp_path / "tuned"), "--steps", "2", "--lpips-crop", "0", "--only-amplitude",
                 "--local-ratio", "3", "--local-window", "16", "--init-from", str(tmp_path / "first" / "model")]) == 0
    before, after = load_model(tmp_path / "first" / "model"), load_model(tmp_path / "tuned" / "model")
    assert torch.equal(after.generator.patterns, before.generator.patterns)
    for name, tensor in before.detector.state_dict().items():   # the detector, its matched filter included
        assert torch.equal(after.detector.state_dict()[name], tensor), name
    moved = [not torch.equal(after.generator.amplitude_net.state_dict()[n], t)
             for n, t in before.generator.amplitude_net.state_dict().items()]
    assert any(moved)
    # the manifest keeps how D was made (the base's Phase 1 run) and adds the amplitude run after it
    assert after.manifest["training"] == before.manifest["training"]
    assert after.manifest["amplitude_tuning"]["config"]["only_amplitude"]
    assert after.manifest["amplitude_tuning"]["config"]["local_ratio"] == 3
    with pytest.raises(SystemExit, match="--init-from"):
        Phase1Trainer(parse_args([*base, "--out", str(tmp_path / "bad"), "--only-amplitude"]))


def test_the_amplitude_cap_measures_against_the_frozen_base(tiny_corpus, tmp_path):
    base = ["--data", str(tiny_corpus), "--working-size", "64", "--batch-size", "4", "--warmup-steps", "0",
            "--device", "cpu", "--lpips-crop", "0"]
    assert main([*base, "--out", str(tmp_path / "first"), "--steps", "1"]) == 0
    tuned = [*base, "--only-amplitude", "--init-from", str(tmp_path / "first" / "model"), "--steps", "2"]
    trainer = Phase1Trainer(parse_args([*tuned, "--out", str(tmp_path / "tuned"), "--amplitude-cap", "1.2"]))
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    message = torch.ones(2, trainer.config.n_bits)
    window = trainer.lpips_window(64)
    budget = torch.full((2,), 0.02)
    w = trainer.generator(x, message)
    strength = torch.sqrt(budget / trainer.lpips_batch(x, (x + w).clamp(0, 1))).view(-1, 1, 1, 1)
    # untrained, G is its base: no excess at a cap above 1, and the excess is how far a lower cap is passed
    assert trainer.excess_over_base(x, message, strength, budget, window).item() == 0
    trainer.config.amplitude_cap = 0.5
    assert trainer.excess_over_base(x, message, strength, budget, window).item() == pytest.approx(0.5, abs=1e-3)
    trainer.config.amplitude_cap = 1.2
    frozen = {n: t.clone() for n, t in trainer.reference.state_dict().items()}
    for _ in trainer.run():
        pass
    assert all(torch.equal(trainer.reference.state_dict()[n], t) for n, t in frozen.items())
    with pytest.raises(SystemExit, match="--only-amplitude"):
        Phase1Trainer(parse_args([*base, "--out", str(tmp_path / "bad"), "--amplitude-cap", "1.2"]))


def test_the_lpips_map_is_lpips_before_its_mean(tmp_path):
    trainer = Phase1Trainer(parse_args(["--data", "unused", "--out", str(tmp_path / "run"), "--working-size", "64",
                                        "--device", "cpu", "--local-ratio", "3"]))
    a = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    b = (a + 0.05 * torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    b[1, :, :16, :16] = 1 - b[1, :, :16, :16]          # one image damaged in one corner alone
    lpips_map = trainer.lpips_map(a, b)
    assert lpips_map.shape == (2, 1, 64, 64) and not trainer.lpips.spatial
    assert torch.allclose(lpips_map.mean(dim=(1, 2, 3)), trainer.lpips_batch(a, b), rtol=0.05)
    corner, rest = lpips_map[1, 0, :16, :16].mean(), lpips_map[1, 0, 32:, 32:].mean()
    assert corner > 3 * rest   # the map says where: what the local bound reads


def test_training_transforms_and_latent_round_trip_train_and_are_recorded(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    assert main(["--data", str(tiny_corpus), "--out", str(out), "--working-size", "64", "--batch-size", "2",
                 "--steps", "1", "--warmup-steps", "1", "--device", "cpu", "--training-transforms",
                 "--latent-autoencoder", "taef2", "--p-latent", "1.0"]) == 0
    config = load_model(out / "model").manifest["training"]["config"]
    assert config["training_transforms"] and config["latent_autoencoder"] == "taef2"
