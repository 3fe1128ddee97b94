"""Does a Phase 2 detector still find directly protected copies, at the threshold of its own bank?

    python -m training.phase2.direct_copy_check --data ../shared/data/portraits --out runs/direct_copy_check

A Phase 2 detector replaces the profile's detector, so it must keep doing the shipped model's job
(protected copies, distorted or not) at the false-positive rate asked for. This fine-tunes the
model's D exactly as Phase 2 does (``finetune_detector``, default settings), with S = ``--images``
clean calibration-split images and S_w = the same images protected with the evaluation key at
p = 0.05 (a stand-in for a personalized model that reproduces the watermark perfectly) and Phase 1
data from the training split; then runs ``gwm eval``'s evaluation (eval split, images never seen
here) on the fine-tuned folder, whose threshold comes from the bank Phase 2 wrote.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gwm_desktop.core.engine import default_model_dir
from gwm_desktop.core.image_io import load_image, to_rgb8
from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.lpips_metric import build_lpips
from gwm_desktop.core.watermark import Embedder
from gwm_desktop.core.weights import load_model
from training.datasets import list_images
from training.eval_report import format_report
from training.evaluate import EVAL_KEY, EvalConfig, evaluate, protect_as_png
from training.phase2.detector_finetune import DetectorFinetuneConfig, finetune_detector


def write_sets(model: Path, data: list[Path], out: Path, count: int) -> tuple[Path, Path]:
    """S (clean copies of ``count`` calibration-split images) and S_w (protected at p = 0.05), as PNG."""
    bundle = load_model(model)
    embedder = Embedder(bundle.generator, message_from_key(EVAL_KEY, bundle.n_bits), build_lpips("cpu"), "cpu")
    clean, marked = out / "S", out / "S_w"
    clean.mkdir(parents=True, exist_ok=True)
    marked.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(list_images(data, "calibration")[:count]):
        loaded = load_image(path)
        to_rgb8(loaded.rgb).save(clean / f"{index:03d}.png")
        protected, _ = protect_as_png(embedder, loaded, 0.05)  # the export path, as gwm eval protects
        protected.save(marked / f"{index:03d}.png")
    return clean, marked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--data", type=Path, action="append", required=True, help="image folder (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="work folder (S, S_w, the fine-tuned detector)")
    parser.add_argument("--images", type=int, default=32, help="images in S and in S_w")
    parser.add_argument("--phase1-images", type=int, default=200, help="training-split images mixed in")
    parser.add_argument("--eval-images", type=int, default=100, help="eval-split images to evaluate on")
    args = parser.parse_args(argv)
    model = args.model or default_model_dir()
    clean, marked = write_sets(model, args.data, args.out, args.images)
    phase1 = list_images(args.data, "train")[: args.phase1_images]
    detector = args.out / "detector"
    for progress in finetune_detector(model, EVAL_KEY, clean, marked, detector, DetectorFinetuneConfig(),
                                      phase1_images=phase1):
        if progress.done % 50 == 0:
            print(f"{progress.message}: loss {progress.payload['loss']:.3f}", flush=True)
    config = EvalConfig(model=str(detector), data=[str(d) for d in args.data], max_images=args.eval_images)
    report = None
    for progress in evaluate(config):
        report = progress.payload if progress.message == "report" else report
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
