"""Measure the scanner's key-rank test (``core.key_rank``) against the calibration bank's threshold.

1. The choice (calibration split only): the bank's other-key rows carry known keys (``gwm eval
   --calibrate`` protects image i with ``other_key(1000 + i)`` at a rotating level and with
   ``other_key(5000 + i)`` at p = 0.01), so each row is a positive for its own key. Found % at 1% for
   the maximum over all readings and for the two-group join at several unmoved shares.
2. Held-out images (``gwm eval --save-evidence`` files): found % and false-positive rates for the
   evaluation key, bank threshold (best reading) against the key-rank test (maximum, and as shipped).
3. Per-key spread: each of many keys' false-positive rate on the held-out clean images, under the
   key-rank test (its mean over keys is the rate by construction) and under the bank's threshold.
4. The guarantee as the app meets it: every held-out clean and other-key row tested for a fresh random
   profile key against the scanner's own fixed draw of random keys (``KeyRankTest``), the share with
   p <= 1% per condition over all files, with a 95% Clopper-Pearson interval.

Parts 1, 2's bank row and 3's bank rates need a model with its calibration bank (``gwm eval
--calibrate`` writes one into a copy); on a model without one (the shipped model) the key-rank parts
run alone.

    python -m training.key_rank_check runs/view_join/portraits.safetensors [more files] [--keys 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gwm_desktop.core.detect import NEGATIVE_BANKS, threshold_for_fpr
from gwm_desktop.core.key_rank import UNMOVED_SHARE, KeyRankTest, joined_tails, reading_groups, tail_shares
from gwm_desktop.core.keys import message_from_key, random_messages
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.random_keys import MessageTable, null_messages, reading_scores
from gwm_desktop.core.weights import ModelBundle, load_model
from training.evaluate import EVAL_KEY, bank_hint, other_key
from training.evidence_file import read_evidence
from training.verdict_sets import clopper_pearson

FPR = 0.01
NULL_KEYS = 999
REPORTED = ("none", "jpeg75", "crop0.8", "flip", "random_crop", "rotate5", "bucket512")


def p_values(detector: WatermarkDetector, evidence: torch.Tensor, message: torch.Tensor,
             groups: list[tuple[list[int], float]]) -> torch.Tensor:
    """(..., V, E) evidence -> (...) key-rank p-values for ``message`` under ``groups``, against the
    scanner's own random keys (``KeyRankTest``)."""
    test = KeyRankTest(detector, message, NULL_KEYS, groups=groups)
    flat = evidence.reshape(-1, *evidence.shape[-2:]).float()
    return torch.cat([test.p_values(chunk) for chunk in flat.split(512)]).view(evidence.shape[:-2])


def bank_best(bundle: ModelBundle, message: torch.Tensor) -> tuple[float, dict[str, torch.Tensor]]:
    """The bank's 1% threshold for ``message`` (best reading), and each bank's best-reading agreements."""
    table = MessageTable.of(message.view(1, -1).float())
    banks = {n: reading_scores(bundle.calibration[n].float(), table, torch.float32).amax(1)[:, 0]
             for n in NEGATIVE_BANKS if n in bundle.calibration}
    return max(threshold_for_fpr(b, FPR) for b in banks.values()), banks


def rules(bundle: ModelBundle, view_count: int) -> dict[str, list[tuple[list[int], float]]]:
    everything = [(list(range(view_count)), 1.0)]
    unmoved = reading_groups(bundle.detector, view_count)[0][0]
    rest = [r for r in range(view_count) if r not in unmoved]
    found = {"rank, max of all": everything}
    for share in (0.5, UNMOVED_SHARE):
        found[f"rank, joined {share:g}"] = [(unmoved, share), (rest, 1 - share)]
    return found


def the_choice(bundle: ModelBundle, conditions: list[str]) -> list[str]:
    """Part 1: found % on the calibration bank's rows for their own keys."""
    view_count = bundle.calibration["clean_bits"].shape[1]
    lines = ["1. calibration split, each row's own key (found % at 1%)"]
    rows = {"faint_other_bits": lambda i: other_key(5001 + i), "other_bits": lambda i: other_key(1001 + i)}
    for name, groups in rules(bundle, view_count).items():
        cells = []
        for bank, key_of in rows.items():
            bits = bundle.calibration[bank].float().view(-1, len(conditions), view_count,
                                                        bundle.calibration[bank].shape[-1])
            found = torch.stack([p_values(bundle.detector, bits[i], message_from_key(key_of(i), bundle.n_bits), groups)
                                 for i in range(bits.shape[0])]) <= FPR
            label = "p=0.01" if bank == "faint_other_bits" else "other keys' rows, pooled levels"
            cells.append(f"{label}: " + " ".join(f"{c}={found[:, conditions.index(c)].float().mean():.0%}"
                                                 for c in REPORTED if c in conditions))
        lines.append(f"  {name}: " + "; ".join(cells))
    return lines


def held_out(bundle: ModelBundle, path: Path, nulls: torch.Tensor, keys: int) -> list[str]:
    """Parts 2 and 3 on one evidence file."""
    evidence, metadata = read_evidence(path)
    conditions, levels = metadata["conditions"].split(","), metadata["levels"].split(",")
    message = message_from_key(EVAL_KEY, bundle.n_bits)
    view_count = evidence["clean"].shape[-2]
    table = MessageTable.of(message.view(1, -1).float())
    lines = [f"\n2. {path.stem}: {evidence['clean'].shape[0]} images, evaluation key, found % at 1% "
             "(pooled FPR clean / other keys)"]

    def best(kind: str) -> torch.Tensor:
        bits = evidence[kind].float()
        return reading_scores(bits.reshape(-1, *bits.shape[-2:]), table, torch.float32).amax(1)[:, 0].view(bits.shape[:2])

    deciders = {}
    if bundle.calibration:
        threshold, _ = bank_best(bundle, message)
        deciders["bank threshold, best reading"] = lambda kind: best(kind) > threshold
    for name, groups in rules(bundle, view_count).items():
        deciders[name] = lambda kind, groups=groups: p_values(bundle.detector, evidence[kind], message, groups) <= FPR
    for name, decide in deciders.items():
        clean = decide("clean").float().mean()
        other = torch.cat([decide(f"other@{p}") for p in levels]).float().mean()
        lines.append(f"  {name} ({clean:.2%} / {other:.2%}): " + "; ".join(
            f"p={p} " + " ".join(f"{c}={decide(f'marked@{p}')[:, conditions.index(c)].float().mean():.0%}"
                                 for c in REPORTED if c in conditions) for p in levels))
    lines.append(per_key_spread(bundle, evidence["clean"].float(), nulls, keys))
    return lines


def per_key_spread(bundle: ModelBundle, clean: torch.Tensor, nulls: torch.Tensor, keys: int) -> str:
    """Part 3: each key's clean false-positive rate. Key-rank test: each of the scanner's K + 1 keys (its
    random keys and the evaluation key) ranked against the other K, as the scanner ranks a profile's;
    bank threshold: the first ``keys`` of them."""
    messages = torch.cat([message_from_key(EVAL_KEY, bundle.n_bits).view(1, -1).float(), nulls])
    table = MessageTable.of(messages)
    groups = reading_groups(bundle.detector, clean.shape[-2])
    flat = clean.reshape(-1, *clean.shape[-2:])
    rank_flags, best = [], []
    for chunk in flat.split(256):
        readings = reading_scores(chunk, table, torch.float32)
        rank_flags.append(tail_shares(-joined_tails(readings, groups)) <= FPR)   # every key's p at once
        if bundle.calibration:
            best.append(readings[..., :keys].amax(1))
    rank_rates = torch.cat(rank_flags).float().mean(0)
    line = f"3. clean false-positive rate per key: key-rank test ({len(messages)} keys) {summary(rank_rates)}"
    if not bundle.calibration:
        return line + " (no calibration bank: no bank rates)"
    scores = torch.cat(best)
    subset = table.rows(0, keys)
    thresholds = torch.stack([torch.tensor([threshold_for_fpr(bank[:, j], FPR) for j in range(keys)])
                              for bank in (reading_scores(bundle.calibration[n].float(), subset, torch.float32).amax(1)
                                           for n in NEGATIVE_BANKS if n in bundle.calibration)]).amax(0)
    bank_rates = (scores > thresholds).float().mean(0)
    return f"{line}; bank threshold ({keys} keys) {summary(bank_rates)}"


def summary(rates: torch.Tensor) -> str:
    return (f"mean {rates.mean():.2%}, median {rates.median():.2%}, 90th percentile "
            f"{torch.quantile(rates, 0.9):.2%}, 99th {torch.quantile(rates, 0.99):.2%}")


def fresh_key_rates(bundle: ModelBundle, paths: list[Path], keys_per_image: int = 20) -> list[str]:
    """Part 4: each negative row (clean; other keys' exports) against ``keys_per_image`` fresh random
    profile keys (the interval treats the tests as independent; one image's are not)."""
    generator = torch.Generator().manual_seed(2026)
    flags: dict[tuple[str, str], list[bool]] = {}
    for path in paths:
        evidence, metadata = read_evidence(path)
        conditions, levels = metadata["conditions"].split(","), metadata["levels"].split(",")
        for kind in ("clean", *(f"other@{p}" for p in levels)):
            rows = evidence[kind].float()                                   # (N, C, V, E)
            for n in range(rows.shape[0]):
                for key in random_messages(keys_per_image, bundle.n_bits, generator):
                    p = KeyRankTest(bundle.detector, key, NULL_KEYS).p_values(rows[n])
                    for c, value in zip(conditions, (p <= FPR).tolist(), strict=True):
                        flags.setdefault(("clean" if kind == "clean" else "other keys", c), []).append(value)
    lines = [f"\n4. {keys_per_image} fresh random profile keys an image, the scanner's random keys: share "
             "flagged at 1% (95% interval)"]
    for source in ("clean", "other keys"):
        cells = []
        for (kind, condition), values in flags.items():
            if kind == source:
                low, high = clopper_pearson(sum(values), len(values))
                cells.append(f"{condition} {sum(values) / len(values):.2%} [{low:.2%}, {high:.2%}] of {len(values)}")
        lines.append(f"  {source}: " + "; ".join(cells))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evidence", nargs="*", help="files written by gwm eval --save-evidence")
    parser.add_argument("--model", default="resources/models/default")
    parser.add_argument("--keys", type=int, default=200, help="keys for the per-key spread")
    args = parser.parse_args(argv)
    bundle = load_model(Path(args.model))
    nulls = null_messages(torch.zeros(bundle.n_bits), NULL_KEYS).float()  # the scanner's draw
    if bundle.calibration:
        lines = the_choice(bundle, bundle.manifest["calibration"]["conditions"])
    else:
        lines = [f"{args.model} has no calibration bank: part 1 and the bank's rows are left out ({bank_hint()})"]
    for path in args.evidence:
        lines.extend(held_out(bundle, Path(path), nulls, args.keys))
    if args.evidence:
        lines.extend(fresh_key_rates(bundle, [Path(path) for path in args.evidence]))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
