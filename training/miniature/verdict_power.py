"""The model-level verdict measured on finished miniature runs: its power against set size on each
model personalized on X_w, and its false-alarm rate on the clean twins' images.

    python -m training.miniature.verdict_power runs/miniature [more runs ...] --json runs/verdict_power.json

Each personalized model (and its clean twin) makes ``--images`` more images from its run's held-out
prompts, on seeds no split of the run used (``splits.split_seeds(..., "verdict", ...)``), cached in the
run's ``phase2/synth/<method>/<variant>/verdict``. Every image's evidence comes from the run's watermark
model, as ``gwm verdict`` reads it (key-independent), and is scored once; random sets of each size then
give the share of sets with p <= alpha (``training.verdict_sets``: the app's statistic exactly). The
clean twins' images, pooled over runs, give the bound: sets tested against fresh random keys and
against the runs' own key.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gwm_desktop.core.atomic import write_atomic
from gwm_desktop.core.key_rank import reading_groups
from gwm_desktop.core.keys import message_from_key, random_messages
from gwm_desktop.core.random_keys import NULL_SEED, MessageTable
from gwm_desktop.core.verdict import decide, evidence_of_paths, set_verdict
from gwm_desktop.core.weights import load_model
from training.phase2.config import Phase2Config
from training.phase2.layout import RunLayout
from training.phase2.loading import load_personalized
from training.phase2.splits import split_seeds
from training.phase2.synthesize import image_name, synthesize
from training.verdict_sets import SetScores, clopper_pearson, random_sets

ALPHAS = (0.01, 0.001)


@dataclass
class PowerConfig:
    runs: list[str]
    images: int
    sizes: list[int]
    bound_sizes: list[int]
    sets: int
    null_keys: int
    seed: int
    null_draws: int
    threads: int
    json_out: str | None


def parse_args(argv: list[str] | None = None) -> PowerConfig:
    parser = argparse.ArgumentParser(prog="python -m training.miniature.verdict_power", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="miniature output folders (each with phase2/report.json)")
    parser.add_argument("--images", type=int, default=128, help="images per model (a multiple of the held-out prompts)")
    parser.add_argument("--sizes", default="4,8,16,32,64", help="set sizes for the power")
    parser.add_argument("--bound-sizes", default="4,16,64", help="set sizes for the clean twins' false-alarm bound")
    parser.add_argument("--sets", type=int, default=2000, help="random sets per size")
    parser.add_argument("--null-keys", type=int, default=10_000, help="random keys each set is ranked among")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sets and of the fresh keys")
    parser.add_argument("--null-draws", type=int, default=5,
                        help="draws of null keys and tested keys for the clean twins' bound (sets drawn from a few "
                             "hundred correlated images share each draw's null, so one draw's interval is too narrow)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", dest="json_out", default=None, help="write every figure here")
    a = parser.parse_args(argv)
    return PowerConfig(runs=a.runs, images=a.images, sizes=[int(s) for s in a.sizes.split(",")],
                       bound_sizes=[int(s) for s in a.bound_sizes.split(",")], sets=a.sets, null_keys=a.null_keys,
                       seed=a.seed, null_draws=a.null_draws, threads=a.threads, json_out=a.json_out)


def load_runs(run_dir: Path) -> list[tuple[RunLayout, bytes]]:
    """Every finished Phase 2 run of a miniature folder (the fully watermarked one first, then e.g. the
    1/4 case, ``report_wf0.25.json``), each from the config its report recorded."""
    names = {f.name for f in fields(Phase2Config)}
    key_file = run_dir / "subject.key"
    runs = []
    for report in sorted((run_dir / "phase2").glob("report*.json"), key=lambda path: (path.stem != "report", path)):
        saved = json.loads(report.read_text(encoding="utf-8"))["config"]
        config = Phase2Config(**{k: tuple(v) if k == "methods" else v for k, v in saved.items() if k in names},
                              key_file=str(key_file))
        runs.append((RunLayout(config), key_file.read_bytes()))
    if not runs or runs[0][0].config.tag:
        raise SystemExit(f"{run_dir}: no finished Phase 2 run (phase2/report.json)")
    return runs


def model_images(layout: RunLayout, method: str, variant: str, count: int, log: Any) -> list[Path]:
    """``count`` images of one personalized model on the held-out prompts and the "verdict" seeds."""
    cfg = layout.config
    prompts = layout.heldout_prompts
    seeds = split_seeds(cfg.seed, "verdict", variant != "clean", len(prompts), math.ceil(count / len(prompts)),
                        cfg.paired_seeds)
    folder = layout.synth_dir(method, variant, "verdict")
    pipeline = load_personalized(cfg.base, layout.model_dir(method, variant))
    started = time.monotonic()
    for progress in synthesize(pipeline, prompts, seeds, folder, steps=cfg.synth_steps, guidance=cfg.guidance,
                               resolution=cfg.synth_resolution or cfg.resolution, batch_size=cfg.synth_batch_size,
                               negative_prompt=cfg.negative_prompt):
        last = progress
    log(f"  {method} {variant}: {last.done} images ({time.monotonic() - started:.0f} s)")
    return [folder / image_name(pi, seed) for pi, own in enumerate(seeds) for seed in own]


def model_evidence(detector: Any, paths: list[Path]) -> np.ndarray:
    found = [p.payload for p in evidence_of_paths(detector, paths, len(paths), "cpu")]
    missing = [item.path.name for item in found if item.evidence is None]
    if missing:
        raise RuntimeError(f"unreadable synthesized images: {missing[:3]}")
    return np.stack([item.evidence for item in found])


def shares(p_values: np.ndarray) -> dict[str, Any]:
    """Share of sets with a verdict at each alpha, with its 95% Clopper-Pearson interval."""
    row: dict[str, Any] = {"sets": len(p_values)}
    for alpha in ALPHAS:
        hits = int(decide(p_values, alpha).sum())
        row[str(alpha)] = {"share": hits / len(p_values), "ci95": list(clopper_pearson(hits, len(p_values)))}
    return row


def model_row(config: PowerConfig, rng: np.random.Generator, evidence: np.ndarray, message: torch.Tensor,
              null_table: MessageTable, own: MessageTable, groups: list[tuple[list[int], float]]) -> dict[str, Any]:
    """One model's figures: the verdict on all its images (the app's 100,000 keys) and, per set size,
    the share of random sets with a verdict (``config.null_keys`` keys)."""
    whole = set_verdict(evidence, message, groups=groups).to_json()
    scores = SetScores.build(torch.from_numpy(evidence), null_table, own, groups)
    row: dict[str, Any] = {"images": len(evidence), "all_images": {
        k: whole[k] for k in ("n", "p_value", "p_tail_estimate", "effect_z", "verdict")}}
    for size in (s for s in config.sizes if s <= len(evidence)):
        sets = random_sets(rng, len(evidence), size, config.sets)
        p_mc, _, _ = scores.p_values(sets, np.zeros(len(sets), dtype=int))
        row[str(size)] = shares(p_mc)
    return row


def bound(config: PowerConfig, rng: np.random.Generator, pool: np.ndarray, own: MessageTable, n_bits: int,
          groups: list[tuple[list[int], float]], log: Any) -> dict[str, Any]:
    """The clean twins' pooled images: shares of random sets with p <= alpha, tested against fresh
    random keys (each of ``config.null_draws`` draws a new null table and new tested keys; the first
    is the app's table) and against the runs' key (the app's table)."""
    against: dict[str, list[tuple[MessageTable, MessageTable, np.ndarray]]] = {"fresh random keys": [], "the runs' key": []}
    for draw in range(config.null_draws):
        null_table = MessageTable.of(random_messages(config.null_keys, n_bits, torch.Generator().manual_seed(NULL_SEED + draw)))
        tested = random_messages(config.sets, n_bits, torch.Generator().manual_seed(config.seed + 1 + draw))
        against["fresh random keys"].append((null_table, MessageTable.of(tested), np.arange(config.sets)))
        if draw == 0:
            against["the runs' key"].append((null_table, own, np.zeros(config.sets, dtype=int)))
    rows: dict[str, Any] = {}
    for name, draws in against.items():
        per_size: dict[int, list[np.ndarray]] = {size: [] for size in config.bound_sizes}
        for null_table, table, index in draws:
            scores = SetScores.build(torch.from_numpy(pool), null_table, table, groups)
            for size in config.bound_sizes:
                per_size[size].append(scores.p_values(random_sets(rng, len(pool), size, config.sets), index)[0])
        for size, p_values in per_size.items():
            row = rows.setdefault(name, {})[str(size)] = shares(np.concatenate(p_values))
            if len(p_values) > 1:
                row["per_draw"] = {str(a): [float(decide(p, a).mean()) for p in p_values] for a in ALPHAS}
            log(f"bound, clean twins' {len(pool)} images vs {name} ({len(p_values)} null draws), n={size}: "
                + "  ".join(f"alpha {a}: {row[str(a)]['share']:.4f} [{row[str(a)]['ci95'][0]:.4f}, "
                            f"{row[str(a)]['ci95'][1]:.4f}]" for a in ALPHAS))
    return rows


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    torch.set_num_threads(config.threads)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {message}", flush=True)

    rng = np.random.default_rng(config.seed)
    report: dict[str, Any] = {"config": vars(config), "models": {}, "bound": {}}
    clean_pool: list[np.ndarray] = []
    tested_key: bytes | None = None   # the pooled bound against the runs' key needs them to share one
    pool_groups: list[tuple[list[int], float]] | None = None   # and the pool one way to read its readings
    null_table, n_bits = None, 0
    for run in map(Path, config.runs):
        for layout, key in load_runs(run):
            if tested_key not in (None, key):
                raise SystemExit(f"{run} used another key than the runs before it; give runs of one key")
            tested_key = key
            bundle = load_model(layout.watermark_model_dir(), "cpu")
            message = message_from_key(key, bundle.n_bits)
            if null_table is None:
                n_bits = bundle.n_bits
                null_table = MessageTable.of(random_messages(config.null_keys, n_bits,
                                                             torch.Generator().manual_seed(NULL_SEED)))
            own = MessageTable.of(message.view(1, -1))
            log(f"{run}{layout.config.tag}: watermark model {layout.watermark_model_dir()}")
            # the clean twins are the same models in every case of a folder: measured with the first
            variants = ("clean", layout.marked_name) if not layout.config.tag else (layout.marked_name,)
            for method in layout.config.methods:
                for variant in variants:
                    evidence = model_evidence(bundle.detector, model_images(layout, method, variant, config.images, log))
                    groups = reading_groups(bundle.detector, evidence.shape[1])
                    if pool_groups not in (None, groups):
                        raise SystemExit(f"{run}'s detector groups its readings otherwise than the runs before it")
                    pool_groups = groups
                    row = model_row(config, rng, evidence, message, null_table, own, groups)
                    label = "clean" if variant == "clean" else variant
                    report["models"].setdefault(str(run), {}).setdefault(method, {})[label] = row
                    log(f"  {method} {label}: all {row['images']} p = {row['all_images']['p_value']:.2g} "
                        f"(z {row['all_images']['effect_z']:.2f}); " + ", ".join(
                            f"n={s}: {row[str(s)]['0.001']['share']:.3f}" for s in config.sizes if str(s) in row)
                        + " at alpha 0.001")
                    if variant == "clean":
                        clean_pool.append(evidence)
    if not clean_pool or pool_groups is None:
        raise SystemExit("no clean twin among the runs: the bound needs their images")
    report["bound"] = bound(config, rng, np.concatenate(clean_pool), own, n_bits, pool_groups, log)
    report["seconds"] = round(time.monotonic() - started, 1)
    if config.json_out:
        Path(config.json_out).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(Path(config.json_out), (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
