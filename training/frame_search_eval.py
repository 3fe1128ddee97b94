"""Measure the scan designs of ``training.frame_search`` (A today's scanner, B + flipped views,
C + registration, D + translation search) on held-out images under trainers' transforms.

Every image (RGBA composited on white) is protected (PNG, as exported) with each of ``--keys`` keys at
each budget, then scored clean and protected, under every condition, for every key and design.
Thresholds are set per key and design at 1% FPR on clean images *and* on other keys' watermarks,
pooled over conditions, by the same search; two folds (images alternate) so each figure's
threshold comes from the other half's negatives.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gwm_desktop.core.detect import threshold_for_fpr
from gwm_desktop.core.image_io import LoadedImage, load_image, load_image_bytes, load_rgb_resized, to_rgb8
from gwm_desktop.core.jobs import Progress, with_progress
from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.lpips_metric import build_lpips
from gwm_desktop.core.spectrum import luma
from gwm_desktop.core.watermark import CalibrationError, Embedder
from gwm_desktop.core.weights import ModelBundle, load_model
from training.datasets import list_images
from training.evaluate import EVAL_KEY, distortion, other_key, protect_as_png, working_batch
from training.frame_search import (
    METHOD_NAMES,
    METHODS,
    Frame,
    Registration,
    design_agreement,
    joined_score,
    view_evidence,
)
from training.metrics import auc

CONDITIONS = ("none", "flip", "square_crop", "random_crop", "rotate5", "bucket512", "bucket512_flip_latent",
              "jpeg50", "crop0.8", "resize0.5")
SLOW = ("bucket512_flip_latent",)   # the TAEF2 round trip: measured on the first --slow-images only


@dataclass
class SearchConfig:
    data: list[str] = field(default_factory=list)
    per_folder: int = 40
    levels: tuple[float, ...] = (0.01, 0.05)
    keys: int = 5
    slow_images: int = 12
    slow_levels: tuple[float, ...] = (0.05,)
    conditions: tuple[str, ...] = CONDITIONS
    model: str | None = None
    cache: str | None = None


def keys(count: int) -> list[bytes]:
    return [EVAL_KEY, *[other_key(i) for i in range(count - 1)]]


def load_on_white(path: Path) -> LoadedImage:
    """The image as the artist sees it: transparent pixels composited on white (flat art is RGBA)."""
    loaded = load_image(path)
    if loaded.alpha is None:
        return loaded
    rgb = np.asarray(to_rgb8(loaded.rgb), dtype=np.float32)
    alpha = loaded.alpha.astype(np.float32)[..., None] / (65535.0 if loaded.alpha.dtype == np.uint16 else 255.0)
    flat = Image.fromarray(np.rint(rgb * alpha + 255.0 * (1 - alpha)).astype(np.uint8))
    buffer = io.BytesIO()
    flat.save(buffer, format="PNG")
    return load_image_bytes(buffer.getvalue(), path.name)


def collect(config: SearchConfig) -> Iterator[Progress]:
    """One Progress per image; the last payload: agreements (N, 1 + L*K, C, M, K), NaN where not measured,
    and (N, 1 + L*K, C) whether registration found the known frame (1 / 0; NaN where it is not known).

    Variant 0 is the clean image, 1 + l*K + j the image protected with key j at level l.
    """
    bundle = load_model(Path(config.model)) if config.model else _default_bundle()
    detector, registration = bundle.detector, Registration(bundle.detector)
    lpips_model = build_lpips("cpu")
    messages = [message_from_key(key, bundle.n_bits) for key in keys(config.keys)]
    embedders = [Embedder(bundle.generator, m, lpips_model) for m in messages]
    paths = [p for folder in config.data for p in _pick(Path(folder), config.per_folder)]
    n_var, n_keys = 1 + len(config.levels) * config.keys, config.keys
    out = np.full((len(paths), n_var, len(config.conditions), len(METHODS), n_keys), np.nan, dtype=np.float32)
    registered = np.full(out.shape[:3], np.nan, dtype=np.float32)
    slow_images = set(np.linspace(0, len(paths) - 1, config.slow_images).round().astype(int).tolist())
    for index, path in enumerate(paths):
        try:
            loaded = load_on_white(path)
            variants: list[tuple[int, Image.Image, float | None]] = [(0, to_rgb8(loaded.rgb), None)]
            for li, p in enumerate(config.levels):
                for j, embedder in enumerate(embedders):
                    variants.append((1 + li * n_keys + j, protect_as_png(embedder, loaded, p)[0], p))
        except CalibrationError:
            continue
        for c, name in enumerate(config.conditions):
            slow = name in SLOW
            if slow and index not in slow_images:
                continue
            chosen = [(v, im) for v, im, p in variants if not slow or p is None or p in config.slow_levels]
            apply = distortion(name)
            images = [im if apply is None else apply(im) for _, im in chosen]
            grey = luma(working_batch(images, detector.working_size))
            evidence = view_evidence(detector, registration, grey)
            truth = known_frame(name, variants[0][1].size)
            if truth is not None:
                registered[index, [v for v, _ in chosen], c] = [_matches(f, truth) for f in evidence.frames]
            for m, method in enumerate(METHODS):
                for k, message in enumerate(messages):
                    out[index, [v for v, _ in chosen], c, m, k] = design_agreement(detector, evidence, message,
                                                                                    method).numpy()
        yield Progress(index + 1, len(paths), path.name)
    yield Progress(len(paths), len(paths), "done", (out, registered))


def known_frame(condition: str, size: tuple[int, int]) -> Frame | None:
    """The frame a condition puts a view in, where it is known exactly (none, flip, the square crop)."""
    width, height = size
    return {"none": Frame(), "flip": Frame(flip=True),
            "square_crop": Frame(sx=max(1.0, width / height), sy=max(1.0, height / width))}.get(condition)


def _matches(found: Frame, truth: Frame, tolerance: float = 0.06) -> bool:
    return (found.flip == truth.flip and abs(math.log(found.sx / truth.sx)) < tolerance
            and abs(math.log(found.sy / truth.sy)) < tolerance)


def _default_bundle() -> ModelBundle:
    from gwm_desktop.core.engine import default_model_dir

    return load_model(default_model_dir())


def _pick(folder: Path, count: int) -> list[Path]:
    """Up to ``count`` eval-split images of a folder; a folder with fewer eval images than that, every image
    (paintings: no model was trained on them)."""
    held_out = list_images([folder], "eval")
    return held_out[:count] if len(held_out) >= count else list_images([folder], "all")[:count]


DESIGNS = ("A", "B", "C", "D")


def design_scores(scores: np.ndarray, design: str, key: int, reference: np.ndarray) -> np.ndarray:
    """(N, variants, conditions) key ``key``'s scores under ``design``; D scales C and S by the clean
    images of ``reference`` (a boolean image mask: the other fold), scored the same way."""
    if design != "D":
        return scores[:, :, :, METHODS.index(design), key]
    parts = [scores[:, :, :, METHODS.index(m), key] for m in ("C", "S")]
    return joined_score(parts, [part[reference, 0] for part in parts])


def summarise(scores: np.ndarray, config: SearchConfig) -> dict:
    """Found %, clean and cross-key FPR at the cross-fitted 1% threshold, and AUC, per design, level, condition.

    Images alternate between two folds; each fold's figures use thresholds (and D's null scales) set
    on the other fold's negatives.
    """
    n_keys, n_levels = config.keys, len(config.levels)
    folds = np.arange(scores.shape[0]) % 2
    report: dict = {}
    for design in DESIGNS:
        per_key = []
        for k in range(n_keys):
            folded = []
            for fold in (0, 1):
                values = design_scores(scores, design, k, folds != fold)
                folded.append((values[folds == fold], _threshold(values[folds != fold], k, n_keys, n_levels)))
            whole = design_scores(scores, design, k, np.ones(len(folds), dtype=bool))
            per_key.append((folded, whole))
        for li, p in enumerate(config.levels):
            for c, name in enumerate(config.conditions):
                rows: dict[str, list[float]] = {"found": [], "fpr_clean": [], "fpr_cross": [], "auc": []}
                for k, (folded, whole) in enumerate(per_key):
                    own = 1 + li * n_keys + k
                    rows["found"].append(_pooled([_above(v[:, own, c], t) for v, t in folded]))
                    rows["fpr_clean"].append(_pooled([_above(v[:, 0, c], t) for v, t in folded]))
                    rows["fpr_cross"].append(_pooled([_above(_cross(v, c, k, n_keys, n_levels), t)
                                                      for v, t in folded]))
                    ok = ~np.isnan(whole[:, own, c]) & ~np.isnan(whole[:, 0, c])
                    rows["auc"].append(auc(whole[ok, 0, c], whole[ok, own, c]) if ok.any() else float("nan"))
                found = np.asarray(rows["found"])
                report[f"{design}|{p:g}|{name}"] = {
                    "n": int((~np.isnan(scores[:, 1 + li * n_keys, c, 0, 0])).sum()),
                    "found_mean": float(found.mean()), "found_worst_key": float(found.min()),
                    "fpr_clean_mean": float(np.mean(rows["fpr_clean"])), "fpr_clean_max": float(np.max(rows["fpr_clean"])),
                    "fpr_cross_mean": float(np.mean(rows["fpr_cross"])), "fpr_cross_max": float(np.max(rows["fpr_cross"])),
                    "auc_mean": float(np.mean(rows["auc"]))}
        pooled = [(_pooled([_above(v[:, 0], t) for v, t in folded]),
                   _pooled([_above(np.concatenate([_cross(v, c, k, n_keys, n_levels) for c in range(v.shape[2])]), t)
                            for v, t in folded])) for k, (folded, _) in enumerate(per_key)]
        report[f"{design}|all"] = {"fpr_clean_max": max(c for c, _ in pooled), "fpr_cross_max": max(x for _, x in pooled),
                                   "fpr_clean_mean": float(np.mean([c for c, _ in pooled])),
                                   "fpr_cross_mean": float(np.mean([x for _, x in pooled]))}
    return report


def _cross(values: np.ndarray, c: int, k: int, n_keys: int, n_levels: int) -> np.ndarray:
    """(N, variants, conditions) -> key k's scores of images protected with every other key, at every level."""
    return np.concatenate([values[:, 1 + li * n_keys + j, c] for li in range(n_levels)
                           for j in range(n_keys) if j != k])


def _threshold(values: np.ndarray, k: int, n_keys: int, n_levels: int) -> float:
    """1% FPR on the clean bank and on the other-key bank, each on its own (as ``profile_threshold``)."""
    clean = values[:, 0].ravel()
    cross = np.concatenate([_cross(values, c, k, n_keys, n_levels) for c in range(values.shape[2])])
    return max(threshold_for_fpr(v[~np.isnan(v)], 0.01) for v in (clean, cross))


def _above(values: np.ndarray, threshold: float) -> tuple[int, int]:
    values = values[~np.isnan(values)]
    return int((values > threshold).sum()), len(values)


def _pooled(parts: list[tuple[int, int]]) -> float:
    hits, total = sum(h for h, _ in parts), sum(n for _, n in parts)
    return hits / total if total else float("nan")


def registration_line(registered: np.ndarray, config: SearchConfig) -> str:
    """Share of protected images whose registration found the known frame, per level and condition."""
    parts = []
    for li, p in enumerate(config.levels):
        marked = registered[:, 1 + li * config.keys:1 + (li + 1) * config.keys]
        for c, name in enumerate(config.conditions):
            values = marked[:, :, c]
            values = values[~np.isnan(values)]
            if len(values):
                parts.append(f"p {p:g} {name} {100 * values.mean():.0f}% of {len(values)}")
    return "registration found the known frame (flip; scales within 6%): " + "; ".join(parts)


def _fpr(r: dict) -> str:
    return (f"{100 * r['fpr_clean_mean']:.1f} / {100 * r['fpr_clean_max']:.1f}, "
            f"{100 * r['fpr_cross_mean']:.1f} / {100 * r['fpr_cross_max']:.1f}")


def format_table(report: dict, config: SearchConfig) -> str:
    lines = ["design | p | condition | n | found % (mean / worst key) | FPR % clean, cross-key (mean / worst key) | AUC",
             "---|---|---|---|---|---|---"]
    for design in DESIGNS:
        for p in config.levels:
            for name in config.conditions:
                r = report[f"{design}|{p:g}|{name}"]
                if r["n"] == 0:
                    continue
                lines.append(f"{design} | {p:g} | {name} | {r['n']} | {100 * r['found_mean']:.0f} / "
                             f"{100 * r['found_worst_key']:.0f} | {_fpr(r)} | {r['auc_mean']:.3f}")
        lines.append(f"{design} | all | all conditions pooled | | | {_fpr(report[f'{design}|all'])} |")
    legend = "; ".join(f"{k}: {v}" for k, v in METHOD_NAMES.items() if k in DESIGNS)
    return legend + "\n" + "\n".join(lines)


def scan_cost(source: Path, repeats: int = 15) -> dict[str, float]:
    """Seconds per 1 MP JPEG: a bare decode, today's scan (A), and design D; the product bounds scan / decode."""
    import tempfile

    bundle = _default_bundle()
    detector, registration = bundle.detector, Registration(bundle.detector)
    message = message_from_key(EVAL_KEY, bundle.n_bits)
    with Image.open(source) as image:
        rgb = image.convert("RGB")
    scale = (1e6 / (rgb.width * rgb.height)) ** 0.5
    big = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.BICUBIC)
    size = detector.working_size

    def working(path: Path) -> torch.Tensor:
        return torch.from_numpy(load_rgb_resized(path, (size, size))).permute(2, 0, 1)[None].float() / 255.0

    def today(path: Path) -> None:
        detector.best_agreement(detector.decode_views(working(path)), message)

    def searched(path: Path) -> None:
        evidence = view_evidence(detector, registration, luma(working(path)), flipped_views=False)
        design_agreement(detector, evidence, message, "C")
        design_agreement(detector, evidence, message, "S")

    def bare(path: Path) -> None:
        with Image.open(path) as image:
            image.load()

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "1mp.jpg"
        big.save(path, quality=92)
        seconds = {}
        for name, fn in (("bare_decode", bare), ("scan_A", today), ("scan_D", searched)):
            fn(path)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                fn(path)
                best = min(best, time.perf_counter() - start)
            seconds[name] = best
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.frame_search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", default=None,
                        help="image folder (repeatable; default ../shared/data/{portraits,paintings,flat_art})")
    parser.add_argument("--per-folder", type=int, default=40, help="images per folder: its eval split, or all of it when that holds fewer (paintings)")
    parser.add_argument("--levels", default="0.01,0.05", help="comma-separated budgets p")
    parser.add_argument("--keys", type=int, default=5, help="evaluation keys (each the others' cross key)")
    parser.add_argument("--slow-images", type=int, default=12,
                        help="images that also get the TAEF2 condition (about 3 s per variant on a CPU)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated condition names")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--cache", default=None,
                        help="scores file, reused when present, written when not (.npz: with the registration check)")
    parser.add_argument("--json", dest="json_out", default=None, help="also write the report as JSON")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--cost-only", action="store_true", help="only time the scan of a 1 MP JPEG")
    return parser


def _cost_line(cost: dict[str, float], started: float) -> str:
    return (f"scan of a 1 MP JPEG: bare decode {1000 * cost['bare_decode']:.1f} ms; today's scan (A) "
            f"{cost['scan_A'] / cost['bare_decode']:.2f}x; design D (C and S) {cost['scan_D'] / cost['bare_decode']:.2f}x "
            f"({cost['scan_D'] / cost['scan_A']:.2f}x today's); {time.monotonic() - started:.0f} s")


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    data = args.data or [str(shared / name) for name in ("portraits", "paintings", "flat_art")]
    missing = [d for d in data if not Path(d).is_dir()]
    if missing or args.keys < 2:
        parser.error(f"image folder not found: {missing[0]}" if missing else "--keys must be at least 2")
    config = SearchConfig(data=data, per_folder=args.per_folder, keys=args.keys, slow_images=args.slow_images,
                          levels=tuple(float(t) for t in args.levels.split(",") if t.strip()),
                          conditions=tuple(c.strip() for c in args.conditions.split(",") if c.strip()),
                          model=args.model, cache=args.cache)
    started = time.monotonic()
    if args.cost_only:
        print(_cost_line(scan_cost(Path(list_images([Path(data[0])], "all")[0])), started))
        return 0
    registered = None
    if config.cache and Path(config.cache).is_file():
        stored = np.load(config.cache)
        scores, registered = (stored["scores"], stored["registered"]) if config.cache.endswith(".npz") else (stored, None)
    else:
        for progress in with_progress(collect(config), "frame search", "img", hide_when_piped=False):
            if progress.payload is not None:
                scores, registered = progress.payload
        if config.cache and config.cache.endswith(".npz"):
            np.savez(config.cache, scores=scores, registered=registered)
        elif config.cache:
            np.save(config.cache, scores)   # scores only
    report = summarise(scores, config)
    cost = scan_cost(Path(list_images([Path(data[0])], "all")[0]))
    print(format_table(report, config))
    if registered is not None:
        print(registration_line(registered, config))
    print(_cost_line(cost, started))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"config": vars(args), "report": report, "scan_seconds": cost},
                                                  indent=2) + "\n", encoding="utf-8")
    return 0
