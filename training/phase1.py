"""Phase 1: train the generator G and the detector D jointly, alternating their updates.

Loss (SPEC section 2), per step, for a batch x and random profile messages m (other keys m'):

* differentiable strength calibration: ``s = sqrt(p / LPIPS(x, x + w))`` with ``w = G(x, m)`` and a
  budget ``p`` drawn per image, so ``x_w = q(clip(x + s w))`` sits at the budget it will face at export
  (LPIPS grows ~quadratically with a small perturbation's amplitude); ``q`` is 8-bit rounding with a
  straight-through gradient;
* ``L_inv = max(LPIPS(x, x_w) - p, 0)`` (the paper's hinge: it catches where the quadratic estimate
  undershoots);
* D sees distorted clean images (label 0), distorted ``x_w`` (1) and distorted images watermarked
  with another key (0 for this key): binary cross-entropy on the score logit, plus cross-entropy on
  each message bit of the watermarked images (a dense signal that trains far faster than one bit);
* D step on detached images, then G step through a frozen D: ``L_G = lambda_inv L_inv + L_det``.
"""

from __future__ import annotations

import copy
import json
import math
import random
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gwm_desktop.core.devices import resolve_device
from gwm_desktop.core.jobs import CancelToken, Progress, with_progress
from gwm_desktop.core.keys import random_messages
from gwm_desktop.core.lpips_metric import build_lpips
from gwm_desktop.core.models import networks_for_size
from gwm_desktop.core.textures import band_in_units
from gwm_desktop.core.weights import load_model, read_manifest, save_model
from training.checkpoints import latest_checkpoint, save_checkpoint
from training.datasets import PreloadedImages, infinite_batches, list_images
from training.distortion_layer import DistortionLayer
from training.phase1_config import Phase1Config, config_band, parse_args, saved_band


def log_uniform(low: float, high: float, n: int, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(n, generator=generator)
    return torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    return x + ((x * 255).round() / 255 - x).detach()


class Phase1Trainer:
    """Owns the networks, optimisers and data of one run; ``run()`` is the job generator."""

    def __init__(self, config: Phase1Config, cancel: CancelToken | None = None) -> None:
        self.config = config
        self.cancel = cancel or CancelToken()
        self.device = resolve_device(config.device)
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.rng = torch.Generator().manual_seed(config.seed)
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if config.init_from:
            bundle = load_model(Path(config.init_from), self.device)
            self.generator, self.detector = bundle.generator, bundle.detector
            # The model's own architecture wins over the defaults (messages must have its bit count).
            config.n_bits, config.tile = bundle.n_bits, self.generator.tile
            config.band_low, config.band_high = band_in_units(self.generator.band)
            config.working_size = self.generator.working_size
        else:
            self.generator, self.detector = networks_for_size(config.working_size, config.n_bits, config.tile,
                                                              isotropic=config.frame == "isotropic",
                                                              band=config_band(config))
        self.generator.to(self.device).train()
        self.detector.to(self.device).train()
        if config.only_amplitude:
            if not config.init_from:
                raise SystemExit("--only-amplitude fine-tunes a model's amplitude map: give --init-from MODEL")
            self.generator.requires_grad_(False)
            self.generator.amplitude_net.requires_grad_(True)
            self.detector.requires_grad_(False)
        if config.amplitude_cap > 0 and not config.only_amplitude:
            raise SystemExit("--amplitude-cap bounds an amplitude-only run against its base: add --only-amplitude")
        # The base model's G, frozen: what --amplitude-cap measures the new amplitude map against.
        self.reference = copy.deepcopy(self.generator).eval() if config.amplitude_cap > 0 else None
        self.lpips = build_lpips(self.device)
        self.opt_g = torch.optim.Adam([p for p in self.generator.parameters() if p.requires_grad],
                                      lr=config.lr_generator)
        self.opt_d = torch.optim.Adam(self.detector.parameters(), lr=config.lr_detector)
        self.distort = DistortionLayer(seed=config.seed, training_transforms=config.training_transforms,
                                       autoencoder=self._latent_autoencoder(), p_latent=config.p_latent,
                                       isotropic=self.generator.isotropic)
        self.step = 0
        if config.resume:
            self._resume(config.resume)

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"step": self.step, "generator": self.generator.state_dict(), "detector": self.detector.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "rng": self.rng.get_state(),
                "distort_rng": self.distort.rng.getstate(), "config": asdict(self.config)}

    def _latent_autoencoder(self) -> torch.nn.Module | None:
        if not self.config.latent_autoencoder:
            return None
        from gwm_desktop.core.taef2 import load_latent_autoencoder

        folder = None if self.config.latent_autoencoder == "taef2" else Path(self.config.latent_autoencoder)
        return load_latent_autoencoder(folder, self.device)

    def _resume(self, which: str) -> None:
        path = latest_checkpoint(self.out / "checkpoints") if which == "latest" else Path(which)
        if path is None:
            return  # "latest" with no checkpoint yet: a fresh start, as diffusers' scripts do
        state = torch.load(path, map_location=self.device, weights_only=False)
        band = saved_band(state.get("config", {}))
        if band != (self.config.band_low, self.config.band_high):
            raise SystemExit(f"{path} was trained with its textures at {band[0]:g}-{band[1]:g} cycles per 128 px of "
                             f"tile: resume it with --band-low {band[0]:g} --band-high {band[1]:g}")
        self.generator.load_state_dict(state["generator"])
        self.detector.load_state_dict(state["detector"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng.set_state(state["rng"])
        self.distort.rng.setstate(state["distort_rng"])
        self.step = state["step"]

    # -- one step ----------------------------------------------------------------------------
    def warmup_progress(self) -> float:
        return min(1.0, self.step / self.config.warmup_steps) if self.config.warmup_steps > 0 else 1.0

    def budget_multiplier(self) -> float:
        """A detector learns nothing from a watermark it cannot yet see: start loud, end at the real budget."""
        return self.config.warmup_factor ** (1.0 - self.warmup_progress())

    def lpips_window(self, size: int) -> tuple[slice, ...]:
        crop = min(self.config.lpips_crop, size) if self.config.lpips_crop else size
        top, left = (int(v) for v in torch.randint(0, size - crop + 1, (2,), generator=self.rng))
        return (slice(None), slice(None), slice(top, top + crop), slice(left, left + crop))

    def lpips_batch(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.lpips(a * 2 - 1, b * 2 - 1).flatten()

    def lpips_map(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W): LPIPS before its spatial mean (``lpips.LPIPS`` reads ``spatial`` at each call)."""
        self.lpips.spatial = True
        try:
            return self.lpips(a * 2 - 1, b * 2 - 1)
        finally:
            self.lpips.spatial = False

    def calibrated_strength(self, x: torch.Tensor, w: torch.Tensor, budget: torch.Tensor,
                            window: tuple[slice, ...]) -> torch.Tensor:
        """(B, 1, 1, 1): the scale that brings ``x + w`` to the budget (LPIPS grows ~quadratically)."""
        raw = self.lpips_batch(x[window], (x + w).clamp(0, 1)[window])
        return torch.sqrt(budget / raw.clamp_min(1e-8)).view(-1, 1, 1, 1)

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        batch = x.shape[0]
        own = random_messages(batch, cfg.n_bits, self.rng).to(self.device)
        other = random_messages(batch, cfg.n_bits, self.rng).to(self.device)
        budget = log_uniform(cfg.p_min, cfg.p_max, batch, self.rng).to(self.device) * self.budget_multiplier()
        self.distort.p_identity = 1.0 - 0.8 * self.warmup_progress()

        w = self.generator(x, own)
        # LPIPS on one random crop (same place in x and x_w): LPIPS is a spatial mean, so a crop
        # estimates it at a fraction of the cost; export calibrates on the whole image anyway.
        window = self.lpips_window(x.shape[-1])
        strength = self.calibrated_strength(x, w, budget, window)
        x_w = quantize_8bit((x + strength * w).clamp(0, 1))
        with torch.no_grad():
            x_other = quantize_8bit((x + strength * self.generator(x, other)).clamp(0, 1))

        clean_d, other_d = self.distort(x), self.distort(x_other)
        marked_d = self.distort(x_w)

        # D step: detached inputs (none with ``only_amplitude``: D is frozen, its loss only reported).
        with torch.set_grad_enabled(not cfg.only_amplitude):
            bits = self.detector(torch.cat([clean_d, marked_d.detach(), other_d]))
            bits_clean, bits_marked, bits_other = bits.split(batch)
            loss_d = self._detection_loss(bits_clean, bits_marked, bits_other, own, other)
        if not cfg.only_amplitude:
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()

        # G step: through the (momentarily frozen) detector.
        self.detector.requires_grad_(False)
        bits_marked_g = self.detector(marked_d)
        loss_bits_g = F.binary_cross_entropy_with_logits(bits_marked_g, (own + 1) / 2)
        loss_bin_g = F.binary_cross_entropy_with_logits(self.detector.score_logit(bits_marked_g, own),
                                                        torch.ones(batch, device=self.device))
        if cfg.local_ratio > 0:   # the LPIPS map: its mean is the budget's, its worst square the local bound's
            lpips_map = self.lpips_map(x[window], x_w[window])
            final = lpips_map.mean(dim=(1, 2, 3))
            worst = F.avg_pool2d(lpips_map, cfg.local_window, stride=max(1, cfg.local_window // 4)).amax(dim=(1, 2, 3))
            loss_inv = F.relu(final - budget).mean() + F.relu(worst - cfg.local_ratio * budget).mean()
        else:
            final = self.lpips_batch(x[window], x_w[window])
            loss_inv = F.relu(final - budget).mean()
        if self.reference is not None:
            loss_inv = loss_inv + self.excess_over_base(x, own, strength, budget, window)
        loss_g = cfg.lambda_inv * loss_inv + loss_bits_g + loss_bin_g
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.detector.requires_grad_(not cfg.only_amplitude)

        with torch.no_grad():
            bit_acc = ((bits_marked > 0).float() * 2 - 1 == own).float().mean()
            agree_marked = self.detector.agreement(bits_marked, own).mean()
            agree_clean = self.detector.agreement(bits_clean, own).mean()
            agree_other = self.detector.agreement(bits_other, own).mean()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "loss_inv": loss_inv.item(),
                "lpips": final.mean().item(), "budget": budget.mean().item(), "bit_acc": float(bit_acc),
                "agree_marked": float(agree_marked), "agree_clean": float(agree_clean),
                "agree_other": float(agree_other)}

    def excess_over_base(self, x: torch.Tensor, message: torch.Tensor, strength: torch.Tensor,
                         budget: torch.Tensor, window: tuple[slice, ...]) -> torch.Tensor:
        """How far the watermark's strength passes ``amplitude_cap`` x the base model's, both calibrated to
        the same budget (the textures are shared, so strength x amplitude is the whole story): the mean
        ratio of each image's worst 1% of pixels, as a mean over the image would forgive one bright face."""
        with torch.no_grad():
            reference = (self.calibrated_strength(x, self.reference(x, message), budget, window)
                         * self.reference.amplitude(x))
        ratio = (strength * self.generator.amplitude(x) / reference.clamp_min(1e-8)).flatten(1)
        worst = ratio.topk(max(1, ratio.shape[1] // 100), dim=1).values.mean(dim=1)
        return F.relu(worst - self.config.amplitude_cap).mean()

    def _detection_loss(self, bits_clean: torch.Tensor, bits_marked: torch.Tensor, bits_other: torch.Tensor,
                        own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        det = self.detector
        ones = torch.ones(bits_clean.shape[0], device=self.device)
        zeros = torch.zeros_like(ones)
        loss_bits = (F.binary_cross_entropy_with_logits(bits_marked, (own + 1) / 2)
                     + F.binary_cross_entropy_with_logits(bits_other, (other + 1) / 2))
        loss_bin = (F.binary_cross_entropy_with_logits(det.score_logit(bits_marked, own), ones)
                    + F.binary_cross_entropy_with_logits(det.score_logit(bits_clean, own), zeros)
                    + F.binary_cross_entropy_with_logits(det.score_logit(bits_other, own), zeros))
        return loss_bits + loss_bin

    # -- the job -----------------------------------------------------------------------------
    def run(self, dataset: PreloadedImages | None = None) -> Iterator[Progress]:
        """Train to ``config.steps``; yields Progress with the step's metrics as payload."""
        cfg = self.config
        if dataset is None:
            paths = list_images([Path(d) for d in cfg.data], split="train")
            if cfg.max_images:
                paths = paths[: cfg.max_images]
            dataset = PreloadedImages(paths, cfg.working_size)
        batches = infinite_batches(dataset, cfg.batch_size, self.rng)
        log_path = self.out / "log.jsonl"
        started = time.monotonic()
        with open(log_path, "a", encoding="utf-8") as log:
            while self.step < cfg.steps:
                self.cancel.raise_if_cancelled()
                metrics = self.train_step(next(batches).to(self.device))
                self.step += 1
                metrics.update(step=self.step, elapsed_s=round(time.monotonic() - started, 2))
                log.write(json.dumps(metrics) + "\n")
                log.flush()
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    save_checkpoint(self.state(), self.out / "checkpoints", self.step, cfg.keep_checkpoints)
                yield Progress(self.step, cfg.steps, f"step {self.step}/{cfg.steps}", metrics)

    def export(self, folder: Path, command: str, metrics: dict[str, Any] | None = None,
               calibration: dict[str, torch.Tensor] | None = None, matched_filter: bool = True) -> dict[str, Any]:
        """Write the model folder. ``matched_filter``: with key signs and D's matched filter (what ships,
        and what the miniature world uses; training.matched_filter explains why no training is needed)."""
        self.generator.eval()
        self.detector.eval()
        generator, detector = self.generator, self.detector
        if detector.matched_filter:
            detector.adopt_templates(generator)  # fine-tuned from a matched model: G's textures have moved
        elif matched_filter:
            from training.matched_filter import with_matched_filter

            generator, detector = with_matched_filter(generator, detector)
        run = {"command": command, "config": asdict(self.config), "steps_done": self.step}
        if self.config.only_amplitude:   # the base's training and detector tuning still made D; its figures were of other exports
            base = read_manifest(Path(self.config.init_from))
            extra = {k: v for k, v in base.items() if k not in ("format", "architecture", "files", "calibration", "metrics")}
            extra.update(amplitude_tuning=run, metrics=metrics or {})
        else:
            extra = {"training": {"phase": 1, **run}, "metrics": metrics or {}}
        return save_model(folder, generator, detector, calibration=calibration, manifest_extra=extra)


def command_line(argv: list[str] | None) -> str:
    """The command that reproduces this run (argv as given to ``main``; ``python -m`` passes none)."""
    return "gwm train phase1 " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    random.seed(config.seed)
    trainer = Phase1Trainer(config)

    def figures(progress: Progress) -> dict[str, str]:
        m = progress.payload
        return {"lpips": f"{m['lpips']:.3f}", "bits": f"{m['bit_acc']:.2f}",
                "own": f"{m['agree_marked']:.2f}", "other": f"{m['agree_other']:.2f}"}

    for _progress in with_progress(trainer.run(), "phase 1", "step", postfix=figures, hide_when_piped=False):
        pass
    model_dir = Path(config.out) / "model"
    trainer.export(model_dir, command_line(argv))
    print(f"model written to {model_dir} (evaluate it with `gwm eval`)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
