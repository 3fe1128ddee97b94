"""How much of the subject a personalized model learned: its samples' perceptual distance to the subject.

    python -m training.miniature.subject_fidelity RUN [RUN ...] [--json FILE] [--threads N]

A model can only reproduce a subject's watermark if it reproduces the subject, so a miss in the
verdict means two different things depending on which it is. For each run this reads the held-out
samples of every personalized model (clean and watermarked), makes the base model's samples for the
same prompts and seeds once (cached in RUN/phase2/synth/base/clean/heldout), and scores each set by
the mean over its images of the LPIPS distance to the nearest of the subject's images at the
personalization's resolution. Two references bracket the score: the base model's samples (nothing
learned) and each subject image against the others (as close as another image of the subject);
``learned`` is the share of the way from the first to the second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gwm_desktop.core.lpips_metric import cached_lpips
from training.datasets import list_images

VARIANTS = ("clean", "marked")


def load_images(paths: list[Path], size: int) -> torch.Tensor:
    """(N, 3, size, size) in [-1, 1]: each image's centred square, Lanczos to ``size`` (LPIPS's range)."""
    frames = []
    for path in paths:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            side = min(rgb.size)
            left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
            square = rgb.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
        frames.append(np.asarray(square, dtype=np.float32) / 127.5 - 1)
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


@torch.no_grad()
def distances(lpips: torch.nn.Module, samples: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
    """(N, M): LPIPS of every sample against every subject image."""
    rows = []
    for sample in samples:
        rows.append(lpips(sample[None].expand(len(subject), -1, -1, -1), subject).flatten())
    return torch.stack(rows)


def base_samples(run: Path, reference: Path) -> list[Path]:
    """The base model's images for the (prompt, seed) records of ``reference`` (a held-out synth folder),
    made once and cached beside the personalized models' sets."""
    from training.phase2.loading import load_base_pipeline
    from training.phase2.synthesize import read_records, regenerate

    out = run / "phase2" / "synth" / "base" / "clean" / "heldout"
    records = read_records(reference)
    missing = [r for r in records if not (out / r.file).exists()]
    if missing:
        out.mkdir(parents=True, exist_ok=True)
        pipeline = load_base_pipeline(run / "base_pipeline")
        for record in missing:
            regenerate(pipeline, record).save(out / record.file)
    return [out / r.file for r in records]


def score_run(run: Path, lpips: torch.nn.Module) -> dict[str, object]:
    """{"subject_loo", "base", "models": {method: {variant: {"distance", "learned", "n"}}}} for one run."""
    synth = run / "phase2" / "synth"
    methods = sorted(p.name for p in synth.iterdir() if p.is_dir() and p.name != "base")
    if not methods:
        raise SystemExit(f"{run}: no synthesized sets under {synth}")
    first = sorted(list_images([synth / methods[0] / "clean" / "heldout"]))
    with Image.open(first[0]) as image:
        size = image.width
    subject = load_images(sorted(list_images([run / "subject" / "X"])), size)
    own = distances(lpips, subject, subject)
    own.fill_diagonal_(float("inf"))
    loo = float(own.min(dim=1).values.mean())
    base = float(distances(lpips, load_images(base_samples(run, synth / methods[0] / "clean" / "heldout"), size),
                           subject).min(dim=1).values.mean())
    models: dict[str, dict[str, dict[str, float]]] = {}
    for method in methods:
        for variant in VARIANTS:
            paths = sorted(list_images([synth / method / variant / "heldout"]))
            if not paths:
                continue
            value = float(distances(lpips, load_images(paths, size), subject).min(dim=1).values.mean())
            learned = (base - value) / (base - loo) if base != loo else float("nan")
            models.setdefault(method, {})[variant] = {"distance": value, "learned": learned, "n": len(paths)}
    return {"subject_loo": loo, "base": base, "size": size, "models": models}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.miniature.subject_fidelity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    lpips = cached_lpips()
    results = {}
    for run in args.runs:
        result = score_run(run, lpips)
        results[str(run)] = result
        print(f"{run}: nearest-subject LPIPS, base model {result['base']:.3f}, subject's own images "
              f"{result['subject_loo']:.3f} ({result['size']} px)")
        for method, variants in result["models"].items():
            for variant, figures in variants.items():
                print(f"  {method:18} {variant:7} {figures['distance']:.3f}  learned {figures['learned']:6.1%}"
                      f"  (n = {figures['n']})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
