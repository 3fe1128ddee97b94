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

import argparse
import json
import math
import random
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gwm_desktop.core.devices import resolve_device
from gwm_desktop.core.generator import DEFAULT_BITS, WORKING_SIZE
from gwm_desktop.core.jobs import CancelToken, Progress, with_progress
from gwm_desktop.core.keys import random_messages
from gwm_desktop.core.lpips_metric import build_lpips
from gwm_desktop.core.models import networks_for_size
from gwm_desktop.core.textures import FIRST_BAND, PATTERN_BAND, band_from_units, band_in_units
from gwm_desktop.core.weights import load_model, read_manifest, save_model
from training.checkpoints import latest_checkpoint, save_checkpoint
from training.datasets import PreloadedImages, infinite_batches, list_images
from training.distortion_layer import DistortionLayer


@dataclass
class Phase1Config:
    data: list[str] = field(default_factory=list)
    out: str = "runs/phase1"
    steps: int = 2000
    batch_size: int = 8
    lpips_crop: int = 160            # LPIPS measured on a random crop of this size (0: whole image)
    lr_generator: float = 2e-3
    lr_detector: float = 1e-3
    p_min: float = 0.008
    p_max: float = 0.06
    lambda_inv: float = 10.0
    warmup_steps: int = 600          # curriculum: budgets start warmup_factor x larger, distortions phase in
    warmup_factor: float = 10.0
    n_bits: int = DEFAULT_BITS
    tile: int = 0                    # 0: half the working size (128 at 256 px)
    working_size: int = WORKING_SIZE
    device: str = "auto"
    seed: int = 0
    checkpoint_every: int = 200
    keep_checkpoints: int = 3
    resume: str | None = None        # a checkpoint path or "latest"
    init_from: str | None = None     # a model folder to fine-tune from
    threads: int = 0                 # torch CPU threads; 0 = torch's default
    max_images: int = 0              # 0 = all training-split images
    training_transforms: bool = False  # flips, crops, rotations among the distortions (SPEC section 3)
    latent_autoencoder: str | None = None  # "taef2" (shipped) or a TAEF2 folder: latent round trips in training
    p_latent: float = 0.25           # share of distorted samples that also get the latent round trip
    frame: str = "isotropic"         # "isotropic" (tile from the shorter side, mirror-symmetric) or "stretch"
    band_low: float = band_in_units(PATTERN_BAND)[0]   # a fresh model's texture band, cycles per 128 px of tile
    band_high: float = band_in_units(PATTERN_BAND)[1]
    only_amplitude: bool = False     # fine-tune G's amplitude map alone: textures and detector frozen
    local_ratio: float = 0.0         # > 0: also hinge the worst local LPIPS at this multiple of the budget
    local_window: int = 32           # px of the working frame over which local LPIPS is averaged


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gwm train phase1", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Phase1Config()
    parser.add_argument("--data", action="append", required=True,
                        help="image folder (repeatable); only its 'train' split (4/6 of files, by name hash) is used")
    parser.add_argument("--out", default=defaults.out, help="run folder: checkpoints/, log.jsonl, model/")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimisation steps")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lpips-crop", type=int, default=defaults.lpips_crop,
                        help="measure the training LPIPS on a random crop of this size (0: whole image)")
    parser.add_argument("--lr-generator", type=float, default=defaults.lr_generator)
    parser.add_argument("--lr-detector", type=float, default=defaults.lr_detector)
    parser.add_argument("--p-min", type=float, default=defaults.p_min, help="smallest LPIPS budget drawn per image")
    parser.add_argument("--p-max", type=float, default=defaults.p_max, help="largest LPIPS budget drawn per image")
    parser.add_argument("--lambda-inv", type=float, default=defaults.lambda_inv, help="weight of the LPIPS hinge")
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps,
                        help="curriculum length: budgets shrink from warmup-factor x to 1x and distortions phase in")
    parser.add_argument("--warmup-factor", type=float, default=defaults.warmup_factor)
    parser.add_argument("--n-bits", type=int, default=defaults.n_bits, help="message bits derived from a key")
    parser.add_argument("--tile", type=int, default=defaults.tile,
                        help="pattern tile size at the working resolution (0: half the working size)")
    parser.add_argument("--working-size", type=int, default=defaults.working_size,
                        help="working resolution of G and D (256 for the app; smaller for the miniature world)")
    parser.add_argument("--device", default=defaults.device, help="auto | cuda | mps | cpu")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument("--keep-checkpoints", type=int, default=defaults.keep_checkpoints)
    parser.add_argument("--resume", default=None, help='checkpoint file, or "latest" in --out')
    parser.add_argument("--init-from", default=None, help="model folder to fine-tune from (e.g. resources/models/default)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: default)")
    parser.add_argument("--max-images", type=int, default=0, help="cap on training images (0: all)")
    parser.add_argument("--training-transforms", action="store_true",
                        help="also draw a fine-tuning script's flips, crops and rotations as distortions")
    parser.add_argument("--latent-autoencoder", default=None, metavar="taef2|FOLDER",
                        help="put a latent round trip (the shipped TAEF2, or a TAEF2 folder) after some distortions")
    parser.add_argument("--p-latent", type=float, default=defaults.p_latent,
                        help="share of distorted samples that also get the latent round trip")
    parser.add_argument("--band-low", type=float, default=defaults.band_low,
                        help="lowest texture frequency of a fresh model, cycles per 128 px of tile")
    parser.add_argument("--band-high", type=float, default=defaults.band_high,
                        help="highest texture frequency of a fresh model, cycles per 128 px of tile")
    parser.add_argument("--frame", choices=("isotropic", "stretch"), default=defaults.frame,
                        help="watermark frame of a fresh model: isotropic and mirror-symmetric (new), or the "
                             "earlier square frame stretched to the image")
    parser.add_argument("--local-ratio", type=float, default=defaults.local_ratio,
                        help="also keep the LPIPS of the worst --local-window square under this multiple of the "
                             "budget (0: off). LPIPS is a mean over the image: without it G may gather its "
                             "watermark into one visible patch that the mean forgives")
    parser.add_argument("--local-window", type=int, default=defaults.local_window,
                        help="side in px of the working frame's squares that --local-ratio bounds")
    parser.add_argument("--only-amplitude", action="store_true",
                        help="with --init-from: train only where G puts its watermark (its amplitude map); the "
                             "textures and the detector stay as they are, so scans and earlier exports read the same")
    return parser


def config_band(config: Phase1Config) -> tuple[float, float]:
    """The run's texture band in cycles per pixel, as ``textures.pattern_frequencies`` takes it."""
    if not 0 < config.band_low < config.band_high:
        raise SystemExit(f"--band-low must be positive and below --band-high, got {config.band_low:g}, {config.band_high:g}")
    return band_from_units(config.band_low, config.band_high)


def saved_band(saved_config: dict) -> tuple[float, float]:
    """A checkpoint's band in cycles per 128 px of tile; checkpoints from before the setting used the first."""
    first = band_in_units(FIRST_BAND)
    return (saved_config.get("band_low", first[0]), saved_config.get("band_high", first[1]))


def parse_args(input_args: list[str] | None = None) -> Phase1Config:
    args = build_parser().parse_args(input_args)
    return Phase1Config(**{k.replace("-", "_"): v for k, v in vars(args).items()})


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
        raw = self.lpips_batch(x[window], (x + w).clamp(0, 1)[window])
        strength = torch.sqrt(budget / raw.clamp_min(1e-8)).view(-1, 1, 1, 1)
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
