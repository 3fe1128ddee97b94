"""Measure the scanner's key-rank test (``core.key_rank``) against the calibration bank's threshold.

1. The choice (calibration split only): the bank's other-key rows carry known keys (``gwm eval
   --calibrate`` protects image i with ``other_key(1000 + i)`` at a rotating level and with
   ``other_key(5000 + i)`` at p = 0.01), so each row is a positive for its own key. Found % at 1% for
   the maximum over all readings and for the two-group join at several unmoved shares.
2. Held-out images (``gwm eval --save-evidence`` files): found % and false-positive rates for the
   evaluation key, bank threshold (best reading) against the key-rank test (maximum, and as shipped).
3. Per-key spread: each of many keys' false-positive rate on the held-out clean images, under the
   key-rank test (its mean over keys is the rate by construction) and under the bank's threshold.
4. The guarantee as the app meets it: every held-out clean and other-key row tested for each of many
   fresh random profile keys against the scanner's own fixed draw of random keys (``KeyRankTest``), the
   share with p <= 1% per condition over all files, with a 95% interval that resamples images and keys.

Parts 1, 2's bank row and 3's bank rates need a model with its calibration bank (``gwm eval
--calibrate`` writes one into a copy); on a model without one (the shipped model) the key-rank parts
run alone.

    python -m training.key_rank_check runs/view_join/portraits.safetensors [more files] [--keys 200] [--fresh-keys 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gwm_desktop.core.detect import NEGATIVE_BANKS, threshold_for_fpr
from gwm_desktop.core.key_rank import (
    UNMOVED_SHARE,
    KeyRankTest,
    group_best,
    joined_tails,
    reading_groups,
    tail_shares,
)
from gwm_desktop.core.keys import message_from_key, random_messages
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.random_keys import NULL_SEED, MessageTable, reading_scores, seeded_table
from gwm_desktop.core.weights import ModelBundle, load_model
from training.evaluate import EVAL_KEY, bank_hint, other_key
from training.evidence_file import read_evidence

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


def fresh_key_flags(rows: torch.Tensor, fresh: MessageTable, nulls: MessageTable,
                    groups: list[tuple[list[int], float]]) -> torch.Tensor:
    """(R, V, E) evidence -> (R, F) whether each of F profile keys flags each row at ``FPR``: for every key
    exactly what ``KeyRankTest(key, nulls).p_values`` decides (its K random keys ranked with it), all keys at once."""
    count = len(nulls)
    flags = []
    for chunk in rows.split(16):
        on_nulls = reading_scores(chunk, nulls, torch.float32)                  # (n, V, K)
        on_fresh = reading_scores(chunk, fresh, torch.float32)                  # (n, V, F)
        key_joined, null_joined = None, None
        for group, share in groups:
            null_best, key_best = group_best(on_nulls, group), group_best(on_fresh, group)
            ascending = null_best.sort(dim=-1).values
            at_least = count - torch.searchsorted(ascending, null_best.contiguous(), side="left")  # (n, K)
            key_tail = (1 + count - torch.searchsorted(ascending, key_best.contiguous(), side="left")) / (count + 1)
            # a random key's tail counts the tested key too where it scores at least as high
            null_tail = (at_least[:, None, :] + (key_best[:, :, None] >= null_best[:, None, :])) / (count + 1)
            key_part, null_part = key_tail / share, null_tail / share                 # (n, F), (n, F, K)
            key_joined = key_part if key_joined is None else torch.minimum(key_joined, key_part)
            null_joined = null_part if null_joined is None else torch.minimum(null_joined, null_part)
        p = (1 + (null_joined <= key_joined[..., None]).sum(-1)) / (count + 1)
        flags.append(p <= FPR)
    return torch.cat(flags)


def two_way_interval(flags: torch.Tensor, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """(images, keys) flags -> a 95% percentile-bootstrap interval of their mean, images and keys each
    resampled (an image's tests share the image, a key's share the key: neither set is independent)."""
    generator = torch.Generator().manual_seed(seed)
    images, keys = flags.shape
    image_weights = torch.multinomial(torch.ones(images), images * draws, replacement=True,
                                      generator=generator).view(draws, images)
    key_weights = torch.multinomial(torch.ones(keys), keys * draws, replacement=True,
                                    generator=generator).view(draws, keys)
    image_counts = torch.zeros(draws, images).scatter_add_(1, image_weights, torch.ones(draws, images))
    key_counts = torch.zeros(draws, keys).scatter_add_(1, key_weights, torch.ones(draws, keys))
    rates = torch.einsum("bi,ik,bk->b", image_counts, flags.float(), key_counts) / (images * keys)
    low, high = torch.quantile(rates, torch.tensor([0.025, 0.975]))
    return float(low), float(high)


def fresh_key_rates(bundle: ModelBundle, paths: list[Path], nulls: MessageTable, keys: int = 200) -> list[str]:
    """Part 4: every negative row (clean; other keys' exports) tested for ``keys`` fresh random profile
    keys against ``nulls``, the scanner's own random keys, as the app tests a profile's; the interval
    resamples images and keys."""
    fresh = MessageTable.of(random_messages(keys, bundle.n_bits, torch.Generator().manual_seed(2026)).float())
    flags: dict[tuple[str, str], list[torch.Tensor]] = {}
    for path in paths:
        evidence, metadata = read_evidence(path)
        conditions, levels = metadata["conditions"].split(","), metadata["levels"].split(",")
        for kind in ("clean", *(f"other@{p}" for p in levels)):
            rows = evidence[kind].float()                                   # (N, C, V, E)
            groups = reading_groups(bundle.detector, rows.shape[-2])
            found = fresh_key_flags(rows.flatten(0, 1), fresh, nulls, groups).view(*rows.shape[:2], keys)
            for c, condition in enumerate(conditions):
                flags.setdefault(("clean" if kind == "clean" else "other keys", condition), []).append(found[:, c])
    lines = [f"\n4. {keys} fresh random profile keys, each testing every row against the scanner's random keys: "
             "share flagged at 1% (95% interval, images and keys resampled)"]
    for source in ("clean", "other keys"):
        cells = []
        for (kind, condition), parts in flags.items():
            if kind == source:
                found = torch.cat(parts)
                low, high = two_way_interval(found)
                cells.append(f"{condition} {found.float().mean():.2%} [{low:.2%}, {high:.2%}] of {found.shape[0]} rows")
        lines.append(f"  {source}: " + "; ".join(cells))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evidence", nargs="*", help="files written by gwm eval --save-evidence")
    parser.add_argument("--model", default="resources/models/default")
    parser.add_argument("--keys", type=int, default=200, help="keys for the per-key spread")
    parser.add_argument("--fresh-keys", type=int, default=200, help="fresh profile keys for part 4")
    args = parser.parse_args(argv)
    bundle = load_model(Path(args.model))
    scanner_keys = seeded_table(NULL_KEYS, bundle.n_bits, NULL_SEED)  # the scanner's draw
    if bundle.calibration:
        lines = the_choice(bundle, bundle.manifest["calibration"]["conditions"])
    else:
        lines = [f"{args.model} has no calibration bank: part 1 and the bank's rows are left out ({bank_hint()})"]
    for path in args.evidence:
        lines.extend(held_out(bundle, Path(path), scanner_keys.messages, args.keys))
    if args.evidence:
        lines.extend(fresh_key_rates(bundle, [Path(path) for path in args.evidence], scanner_keys, args.fresh_keys))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
