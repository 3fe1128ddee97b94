"""Measure the model-level verdict (``gwm verdict``) on real images: its false-alarm bound and its power.

Null sets (the verdict must say "no" at rate <= alpha): random sets of held-out images (eval split),
clean or watermarked with *other* keys, undistorted and under SPEC distortions; each set is tested
against a fresh random profile key of its own (none shared between sets, conditions or sizes).
Direct copies: sets of images protected with the tested key, under every SPEC distortion (p < 1e-6
expected for 8 images), and power against set size.

Each image's evidence is computed once and scored against every message once; sets (which may
overlap) reuse those scores, with exactly the statistic of ``core.verdict.set_verdict`` (checked on a
few sets). Example: ``python -m training.verdict_bound --json runs/verdict_bound.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gwm_desktop.core.atomic import write_atomic
from gwm_desktop.core.distortions import STANDARD_DISTORTIONS
from gwm_desktop.core.image_io import ImageLoadError, load_image, to_rgb8
from gwm_desktop.core.key_rank import reading_groups
from gwm_desktop.core.keys import message_from_key, random_messages
from gwm_desktop.core.lpips_metric import build_lpips
from gwm_desktop.core.random_keys import NULL_SEED, MessageTable
from gwm_desktop.core.verdict import VERDICT_PEAKS, decide, set_verdict
from gwm_desktop.core.watermark import CalibrationError, Embedder
from gwm_desktop.core.weights import load_model
from training.datasets import list_images
from training.evaluate import EVAL_KEY, distortion, other_key, parse_conditions, protect_as_png, working_batch
from training.verdict_sets import SetScores, clopper_pearson, random_sets

DEFAULT_DATA = ["../shared/data/portraits", "../shared/data/paintings", "../shared/data/flat_art"]


@dataclass
class BoundConfig:
    model: str
    data: list[str]
    max_per_source: int
    sets: int
    sizes: list[int]
    null_keys: int
    null_conditions: list[str]
    other_conditions: list[str]
    other_keys: int
    direct_images: int
    direct_levels: list[float]
    direct_sets: int
    power_sizes: list[int]
    power_conditions: list[str]
    seed: int
    json_out: str | None


def parse_args(argv: list[str] | None = None) -> BoundConfig:
    from gwm_desktop.core.engine import default_model_dir

    parser = argparse.ArgumentParser(prog="python -m training.verdict_bound", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(default_model_dir()), help="model folder (default: the shipped one)")
    parser.add_argument("--data", action="append", default=None, help=f"image folder, repeatable (default {DEFAULT_DATA})")
    parser.add_argument("--max-per-source", type=int, default=300, help="eval-split images per folder at most")
    parser.add_argument("--sets", type=int, default=2000, help="random null sets per size and condition")
    parser.add_argument("--sizes", default="4,16,64", help="null set sizes")
    parser.add_argument("--null-keys", type=int, default=10_000, help="random keys per verdict")
    parser.add_argument("--null-conditions", default="none,jpeg75,resize0.5,crop0.8,screenshot,flip,bucket512",
                        help="conditions of the clean null sets ('none', SPEC distortions or training transforms)")
    parser.add_argument("--other-conditions", default="none,jpeg75,crop0.8,flip,bucket512",
                        help="conditions of the other-key null sets")
    parser.add_argument("--other-keys", type=int, default=8, help="other profiles' keys the images are protected with")
    parser.add_argument("--direct-images", type=int, default=96, help="images protected with the tested key")
    parser.add_argument("--direct-levels", default="0.01,0.05", help="budgets p of the direct copies")
    parser.add_argument("--direct-sets", type=int, default=200, help="random sets of 8 per condition and level")
    parser.add_argument("--power-sizes", default="4,8,16,32,64", help="set sizes of the power curve")
    parser.add_argument("--power-conditions", default="crop0.8,resize0.5,jpeg50,screenshot",
                        help="the harder distortions the power curve is measured under (at the lowest level)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sets and the tested keys")
    parser.add_argument("--json", dest="json_out", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.null_keys < 999:
        parser.error("--null-keys must be at least 999: alpha 0.001 needs a p-value that can reach it")

    def names(text: str) -> list[str]:
        try:
            return list(parse_conditions(text))
        except ValueError as error:
            parser.error(str(error))

    return BoundConfig(args.model, args.data or DEFAULT_DATA, args.max_per_source, args.sets,
                       [int(t) for t in args.sizes.split(",")], args.null_keys, names(args.null_conditions),
                       names(args.other_conditions), args.other_keys, args.direct_images,
                       [float(t) for t in args.direct_levels.split(",")], args.direct_sets,
                       [int(t) for t in args.power_sizes.split(",")], names(args.power_conditions), args.seed,
                       args.json_out)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def evidence_under(detector: torch.nn.Module, images: list, conditions: list[str]) -> dict[str, np.ndarray]:
    """{condition: (N, V, E)} evidence of PIL images, distorted at full resolution, then scanned."""
    out = {}
    for condition in conditions:
        distort = distortion(condition) or (lambda image: image)
        views = []
        for start in range(0, len(images), 32):
            batch = working_batch([distort(im) for im in images[start:start + 32]], detector.working_size,
                                  detector.isotropic)
            views.append(detector.decode_views(batch, peaks=VERDICT_PEAKS).numpy())
        out[condition] = np.concatenate(views)
    return out


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    started = time.monotonic()
    torch.manual_seed(config.seed)
    bundle = load_model(Path(config.model), "cpu")
    detector, n_bits = bundle.detector, bundle.n_bits
    paths = [p for folder in config.data for p in list_images([Path(folder)], "eval")[: config.max_per_source]]
    lpips_model = build_lpips("cpu")
    others = [Embedder(bundle.generator, message_from_key(other_key(i), n_bits), lpips_model, "cpu")
              for i in range(config.other_keys)]
    own_message = message_from_key(EVAL_KEY, n_bits)
    own = Embedder(bundle.generator, own_message, lpips_model, "cpu")
    clean, other, direct = [], [], {p: [] for p in config.direct_levels}
    for index, path in enumerate(paths):
        try:
            loaded = load_image(path)
            other_image, _ = protect_as_png(others[index % len(others)], loaded, config.direct_levels[index % len(config.direct_levels)])
            copies = {p: protect_as_png(own, loaded, p)[0] for p in config.direct_levels} \
                if len(direct[config.direct_levels[0]]) < config.direct_images else {}
        except (ImageLoadError, CalibrationError) as error:
            log(f"skipped {path.name}: {error}")
            continue
        clean.append(to_rgb8(loaded.rgb))
        other.append(other_image)
        for p, image in copies.items():
            direct[p].append(image)
        if (index + 1) % 25 == 0:
            log(f"protected {index + 1}/{len(paths)} ({time.monotonic() - started:.0f} s)")
    log(f"{len(clean)} images; scanning under the conditions")
    evidence = {"clean": evidence_under(detector, clean, config.null_conditions),
                "other keys": evidence_under(detector, other, config.other_conditions)}
    direct_conditions = ["none", *STANDARD_DISTORTIONS]
    direct_evidence = {p: evidence_under(detector, images, direct_conditions) for p, images in direct.items()}
    log(f"evidence done ({time.monotonic() - started:.0f} s); scoring")

    null_table = MessageTable.of(random_messages(config.null_keys, n_bits, torch.Generator().manual_seed(NULL_SEED)))
    rng = np.random.default_rng(config.seed)
    # Every set is tested against a key of its own, never shared with another set, condition or size:
    # the guarantee is over the key's draw, so a key reused across cells would count its luck in each.
    key_stream = torch.Generator().manual_seed(config.seed + 1)
    report: dict = {"config": vars(config), "images": len(clean), "null": {}, "direct": {}, "power": {}}
    alphas = (0.01, 0.001)
    checked = False
    for source, by_condition in evidence.items():
        for condition, ev in by_condition.items():
            groups = reading_groups(detector, ev.shape[1])
            # each size's sets tested against keys of their own, all scored in one pass
            tested = torch.cat([random_messages(config.sets, n_bits, key_stream) for _ in config.sizes])
            scores = SetScores.build(torch.from_numpy(ev), null_table, MessageTable.of(tested), groups)
            for index, size in enumerate(config.sizes):
                sets = random_sets(rng, len(ev), size, config.sets)
                keys = index * config.sets + np.arange(config.sets)
                p_mc, p_tail, _ = scores.p_values(sets, keys)
                if not checked:  # the shortcut must be the app's statistic exactly
                    for j in range(3):
                        app = set_verdict(ev[sets[j]], tested[keys[j]], null_keys=config.null_keys, groups=groups)
                        assert abs(app.p_value - p_mc[j]) < 1e-12, (app.p_value, p_mc[j])
                    checked = True
                row = {}
                for alpha in alphas:
                    hits = int(decide(p_mc, alpha).sum())  # the app's verdicts
                    low, high = clopper_pearson(hits, len(p_mc))
                    row[str(alpha)] = {"share": hits / len(p_mc), "ci95": [low, high], "sets": len(p_mc),
                                       "tail_share": float((p_tail < alpha).mean())}
                report["null"].setdefault(source, {}).setdefault(condition, {})[str(size)] = row
                log(f"null {source:10s} {condition:11s} n={size:3d}: " + "  ".join(
                    f"alpha {a}: {row[str(a)]['share']:.4f} [{row[str(a)]['ci95'][0]:.4f}, "
                    f"{row[str(a)]['ci95'][1]:.4f}] (tail {row[str(a)]['tail_share']:.4f})" for a in alphas))
    own_table = MessageTable.of(own_message.view(1, -1))
    for p, by_condition in direct_evidence.items():
        for condition, ev in by_condition.items():
            scores = SetScores.build(torch.from_numpy(ev), null_table, own_table, reading_groups(detector, ev.shape[1]))
            sets = random_sets(rng, len(ev), min(8, len(ev)), config.direct_sets)
            p_mc, p_tail, _ = scores.p_values(sets, np.zeros(len(sets), dtype=int))
            floor = 1 / (config.null_keys + 1)
            report["direct"].setdefault(str(p), {})[condition] = {
                "worst_p": float(p_mc.max()), "share_at_floor": float((p_mc <= floor).mean()),
                "worst_tail_estimate": float(p_tail.max()), "sets": len(sets)}
            log(f"direct p={p} {condition:22s}: worst p {p_mc.max():.2e} (floor {floor:.1e}: "
                f"{(p_mc <= floor).mean():.3f} of sets there), worst tail estimate {p_tail.max():.1e}")
            if p == min(config.direct_levels) and condition in config.power_conditions:
                for size in config.power_sizes:
                    size = min(size, len(ev))
                    sets = random_sets(rng, len(ev), size, config.direct_sets)
                    p_mc, p_tail, _ = scores.p_values(sets, np.zeros(len(sets), dtype=int))
                    report["power"].setdefault(condition, {})[str(size)] = {
                        str(a): float(decide(p_mc, a).mean()) for a in alphas}
                log(f"power p={p} {condition}: " + ", ".join(
                    f"n={s}: {v['0.001']:.2f}" for s, v in report["power"][condition].items()) + " (alpha 0.001)")
    report["seconds"] = time.monotonic() - started
    if config.json_out:
        Path(config.json_out).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(Path(config.json_out), (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    log(f"done in {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
