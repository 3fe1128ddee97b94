"""Phase 1b: fine-tune the detector on *exported* images under full-resolution distortions.

Phase 1 distorts at the 256 px working resolution, inside the training graph. What the app scans is
different: a calibrated, 8-bit, encoded export, distorted at its own resolution (a JPEG's 8 px blocks
land at another scale, a crop zooms the texture by 1/keep), then resized by the scanner. This job
closes that gap with G frozen: it exports each training image once with a random key at a random
budget (the real ``Embedder`` path), then trains D on random SPEC-style distortions of clean images
(0), of those exports (1 for their key) and of the same exports judged against another key (0).

    gwm train phase1b --model runs/phase1_main/model --data PORTRAITS --data SKIMAGE --out runs/tuned
"""

from __future__ import annotations

import argparse
import io
import json
import math
import random
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageFilter

from gwm_desktop.core.devices import resolve_device
from gwm_desktop.core.distortions import TRAINING_TRANSFORMS
from gwm_desktop.core.image_io import EncodeOptions, ImageLoadError, decode_bytes, load_image, to_rgb8
from gwm_desktop.core.jobs import CancelToken, Progress, with_progress
from gwm_desktop.core.keys import random_messages
from gwm_desktop.core.lpips_metric import build_lpips
from gwm_desktop.core.watermark import CalibrationError, Embedder
from gwm_desktop.core.weights import load_model, read_manifest, save_model
from training.datasets import list_images
from training.evaluate import working_batch


@dataclass
class DetectorTuneConfig:
    model: str = ""
    data: list[str] = field(default_factory=list)
    out: str = "runs/detector_tune"
    steps: int = 800
    batch_size: int = 16
    lr: float = 3e-4
    p_min: float = 0.008
    p_max: float = 0.08
    max_images: int = 600
    exports_per_image: int = 1       # each with its own random key and budget
    p_identity: float = 0.2
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    training_transforms: bool = False  # also a fine-tuning script's flips, crops, rotations and buckets


def build_parser() -> argparse.ArgumentParser:
    d = DetectorTuneConfig()
    parser = argparse.ArgumentParser(prog="gwm train phase1b", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder whose detector is tuned (G is kept)")
    parser.add_argument("--data", action="append", required=True, help="image folder (repeatable); train split")
    parser.add_argument("--out", default=d.out, help="run folder; the tuned model goes to OUT/model")
    parser.add_argument("--steps", type=int, default=d.steps)
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step (x3 views)")
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--p-min", type=float, default=d.p_min, help="smallest export budget")
    parser.add_argument("--p-max", type=float, default=d.p_max, help="largest export budget")
    parser.add_argument("--max-images", type=int, default=d.max_images, help="training images exported (0: all)")
    parser.add_argument("--exports-per-image", type=int, default=d.exports_per_image,
                        help="exports of each image, each with its own random key and budget")
    parser.add_argument("--p-identity", type=float, default=d.p_identity, help="share of undistorted views")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--device", default=d.device, help="auto | cuda | mps | cpu")
    parser.add_argument("--threads", type=int, default=d.threads, help="CPU threads for torch (0: default)")
    parser.add_argument("--training-transforms", action="store_true",
                        help="also draw SPEC section 3's training transforms (flip, crops, rotation, buckets)")
    return parser


def parse_args(argv: list[str] | None = None) -> DetectorTuneConfig:
    return DetectorTuneConfig(**{k.replace("-", "_"): v for k, v in vars(build_parser().parse_args(argv)).items()})


# Training transforms drawn by ``--training-transforms`` (core.distortions; the latent round trip is left
# out: on the CPU it costs about a second an image, and it alone is survived, README).
TUNING_TRANSFORMS = ("flip", "square_crop", "random_crop", "rotate5", "bucket512", "bucket768")


def random_distortion(image: Image.Image, rng: random.Random, training_transforms: bool = False) -> Image.Image:
    """One SPEC section 3 distortion with randomised strength, at the image's own resolution."""
    kinds = ["jpeg", "webp", "resize", "crop", "blur", "noise", "color", "screenshot"]
    kind = rng.choice(kinds + list(TUNING_TRANSFORMS) if training_transforms else kinds)
    if kind in TUNING_TRANSFORMS:
        transformed = TRAINING_TRANSFORMS[kind](image)
        return transformed.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else transformed
    if kind in ("jpeg", "webp", "screenshot"):
        if kind == "screenshot":
            factor = rng.uniform(0.6, 0.9)
            image = image.resize((max(8, round(image.width * factor)), max(8, round(image.height * factor))),
                                 Image.Resampling.BICUBIC)
        quality = {"jpeg": rng.randint(40, 95), "webp": rng.randint(60, 95), "screenshot": rng.randint(75, 92)}[kind]
        buffer = io.BytesIO()
        image.save(buffer, format="WEBP" if kind == "webp" else "JPEG", quality=quality)
        buffer.seek(0)
        return Image.open(buffer).convert("RGB")
    if kind == "resize":
        factor = rng.uniform(0.4, 0.8)
        small = image.resize((max(8, round(image.width * factor)), max(8, round(image.height * factor))),
                             Image.Resampling.BICUBIC)
        return small.resize(image.size, Image.Resampling.BICUBIC)
    if kind == "crop":
        keep_w, keep_h = rng.uniform(0.7, 0.95), rng.uniform(0.7, 0.95)
        w, h = round(image.width * keep_w), round(image.height * keep_h)
        left, top = rng.randint(0, image.width - w), rng.randint(0, image.height - h)
        return image.crop((left, top, left + w, top + h))
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.5, 1.5)))
    if kind == "noise":
        array = np.asarray(image, dtype=np.float32) / 255.0
        noisy = array + np.random.default_rng(rng.randrange(2**31)).normal(0, rng.uniform(0.01, 0.03), array.shape)
        return Image.fromarray(np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8))
    brighter = ImageEnhance.Brightness(image).enhance(rng.uniform(0.85, 1.15))
    return ImageEnhance.Contrast(brighter).enhance(rng.uniform(0.8, 1.2))


class DetectorTuner:
    def __init__(self, config: DetectorTuneConfig, cancel: CancelToken | None = None) -> None:
        self.config = config
        self.cancel = cancel or CancelToken()
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        self.bundle = load_model(Path(config.model), self.device)
        self.detector = self.bundle.detector
        self.rng = random.Random(config.seed)
        self.torch_rng = torch.Generator().manual_seed(config.seed)
        self.clean: list[Image.Image] = []
        self.marked: list[Image.Image] = []
        self.messages: list[torch.Tensor] = []

    def prepare(self) -> Iterator[Progress]:
        """Export each training image with random keys at random budgets (the app's own path)."""
        cfg = self.config
        paths = list_images([Path(d) for d in cfg.data], "train")
        self.rng.shuffle(paths)
        if cfg.max_images:
            paths = paths[: cfg.max_images]
        lpips_model = build_lpips(self.device)
        copies = max(1, cfg.exports_per_image)
        messages = random_messages(len(paths) * copies, self.bundle.n_bits, self.torch_rng)
        for index, path in enumerate(paths):
            self.cancel.raise_if_cancelled()
            try:
                loaded = load_image(path)
            except ImageLoadError:
                continue
            clean = to_rgb8(loaded.rgb)
            for copy in range(copies):
                message = messages[index * copies + copy]
                p = math.exp(self.rng.uniform(math.log(cfg.p_min), math.log(cfg.p_max)))
                embedder = Embedder(self.bundle.generator, message, lpips_model, self.device)
                try:
                    result = embedder.protect(loaded, p, EncodeOptions(format="png", keep_metadata=False))
                except CalibrationError:
                    continue
                self.clean.append(clean)
                self.marked.append(to_rgb8(decode_bytes(result.data)))
                self.messages.append(message)
            yield Progress(index + 1, len(paths), f"exporting {path.name}")

    def _view(self, image: Image.Image) -> Image.Image:
        if self.rng.random() >= self.config.p_identity:
            image = random_distortion(image, self.rng, self.config.training_transforms)
        return image

    def _scanner_views(self, x: torch.Tensor) -> torch.Tensor:
        """An isotropic detector reads each image as is and registered (``decode_views``): half the
        views here are the power's registered one, so D learns both (the phases' registered view,
        which ``registered_zoom`` appends for a detector with ``phase_registration``, is not used)."""
        if not self.detector.isotropic:
            return x
        with torch.no_grad():
            registered = self.detector.registered_zoom(x)[: x.shape[0]]
        pick = torch.rand(x.shape[0], generator=self.torch_rng) < 0.5
        return torch.where(pick.view(-1, 1, 1, 1).to(x.device), registered, x)

    def train_step(self, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        cfg = self.config
        picks = [self.rng.randrange(len(self.clean)) for _ in range(cfg.batch_size)]
        views = ([self._view(self.clean[i]) for i in picks] + [self._view(self.marked[i]) for i in picks]
                 + [self._view(self.marked[i]) for i in picks])
        x = self._scanner_views(working_batch(views, self.detector.working_size, self.detector.isotropic).to(self.device))
        own = torch.stack([self.messages[i] for i in picks]).to(self.device)
        other = random_messages(cfg.batch_size, self.bundle.n_bits, self.torch_rng).to(self.device)
        bits = self.detector(x)
        clean_b, marked_b, marked_b2 = bits.split(cfg.batch_size)
        ones = torch.ones(cfg.batch_size, device=self.device)
        det = self.detector
        loss_bits = F.binary_cross_entropy_with_logits(torch.cat([marked_b, marked_b2]), (torch.cat([own, own]) + 1) / 2)
        loss_bin = (F.binary_cross_entropy_with_logits(det.score_logit(marked_b, own), ones)
                    + F.binary_cross_entropy_with_logits(det.score_logit(clean_b, own), ones * 0)
                    + F.binary_cross_entropy_with_logits(det.score_logit(marked_b2, other), ones * 0))
        loss = loss_bits + loss_bin
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            return {"loss": loss.item(), "bit_acc": float(((marked_b > 0).float() * 2 - 1 == own).float().mean()),
                    "agree_marked": float(det.agreement(marked_b, own).mean()),
                    "agree_clean": float(det.agreement(clean_b, own).mean()),
                    "agree_other": float(det.agreement(marked_b2, other).mean())}

    def run(self) -> Iterator[Progress]:
        yield from self.prepare()
        if not self.clean:
            raise ValueError("no training image could be exported")
        self.detector.train()
        optimizer = torch.optim.Adam(self.detector.parameters(), lr=self.config.lr)
        out = Path(self.config.out)
        out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(out / "log.jsonl", "a", encoding="utf-8") as log:
            for step in range(1, self.config.steps + 1):
                self.cancel.raise_if_cancelled()
                metrics = self.train_step(optimizer)
                metrics.update(step=step, elapsed_s=round(time.monotonic() - started, 1))
                log.write(json.dumps(metrics) + "\n")
                log.flush()
                yield Progress(step, self.config.steps, f"tuning step {step}", metrics)
        self.detector.eval()

    def export(self, folder: Path, command: str) -> dict:
        manifest = read_manifest(Path(self.config.model))
        extra = {k: v for k, v in manifest.items() if k not in ("format", "architecture", "files", "calibration")}
        extra["detector_tuning"] = {"command": command, "config": asdict(self.config), "images": len(self.clean)}
        return save_model(folder, self.bundle.generator, self.detector, manifest_extra=extra)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    tuner = DetectorTuner(config)

    def figures(progress: Progress) -> dict[str, str] | None:
        m = progress.payload
        return m and {"bits": f"{m['bit_acc']:.2f}", "own": f"{m['agree_marked']:.2f}", "other": f"{m['agree_other']:.2f}"}

    for _progress in with_progress(tuner.run(), "tune", describe=lambda p: p.message.split()[0], postfix=figures,
                                   hide_when_piped=False):
        pass
    folder = Path(config.out) / "model"
    given = argv if argv is not None else sys.argv[1:]
    tuner.export(folder, "gwm train phase1b " + " ".join(shlex.quote(a) for a in given))
    print(f"tuned model written to {folder}; evaluate it with `gwm eval --model {folder} ...` (it scans by "
          "the key-rank test and needs no calibration bank)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
