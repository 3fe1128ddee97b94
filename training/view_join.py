"""How the scanner's readings are joined into one score, measured on ``gwm eval --save-evidence`` files.

The isotropic scanner reads each image many ways (``WatermarkDetector.decode_views``); until 2026-12-03
it kept the best agreement, with its threshold from the calibration bank read the same way (it now
ranks the key among random ones, ``core.key_rank``; ``training.key_rank_check`` measures that). The maximum of many
readings has a higher null than any one of them, so a faint watermark that needs no search (the as-is
reading) must clear the searched readings' null. Rules compared, each with its threshold from the
model's bank exactly as ``detect.profile_threshold`` sets it (every bank held to the rate on its own;
the shipped model has none: write one into a copy with ``gwm eval --calibrate``):

- ``best``: the maximum over every reading (what ships);
- ``unregistered``: the maximum over the readings before the phases' registered view (the scanner
  before it: as is, the 0.8 view and the power's registered view);
- ``standardised``: each group of readings (those views, and the phases' view) put on its own null
  scale, (max - median) / (99th percentile - median) over the clean bank for this key, then the largest.

Printed per data set: found % per condition at the bank's 1% threshold, the pooled false-positive rates
there, and found % when every rule's threshold is set to the same pooled clean rate on the data set
itself (the statistic's own merit, apart from where the bank puts its threshold).

    python -m training.view_join runs/view_join/portraits.safetensors [more files] [--model DIR]
        [--matched-weight W --matched-present C]   (other agreements than the shipped one)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch

from gwm_desktop.core.agreement import MATCHED_PRESENT, MATCHED_WEIGHT, matched_agreement
from gwm_desktop.core.detect import NEGATIVE_BANKS, threshold_for_fpr
from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.models import READINGS, SCAN_ZOOMS, WatermarkDetector
from training.evaluate import EVAL_KEY, load_banked_model, other_key
from training.evidence_file import read_evidence

Rule = Callable[[torch.Tensor], torch.Tensor]  # (..., V) per-reading agreements -> (...) one score


def reading_agreements(evidence: torch.Tensor, message: torch.Tensor, weight: float = MATCHED_WEIGHT,
                       present_at: float = MATCHED_PRESENT) -> torch.Tensor:
    """(..., V, E) evidence x (n_bits,) message -> (..., V) each reading's agreement: at the defaults
    ``WatermarkDetector.agreement``; ``weight`` (the matched filter's share) and ``present_at`` (where a
    switched-off texture starts to count against the key) let other choices be measured."""
    n_bits = message.shape[-1]
    soft = WatermarkDetector.agreement(evidence[..., :n_bits], message.expand(*evidence.shape[:-1], -1))
    if evidence.shape[-1] == n_bits:
        return soft
    return (1 - weight) * soft + weight * matched_agreement(evidence[..., n_bits:], message, present_at)


def reading_groups(view_count: int) -> list[list[int]]:
    """The readings of each unregistered view (as is, the fixed zooms, the power's registration), then the rest."""
    unregistered = (len(SCAN_ZOOMS) + 1) * READINGS
    groups = [list(range(start, start + READINGS)) for start in range(0, unregistered, READINGS)]
    return groups + ([list(range(unregistered, view_count))] if view_count > unregistered else [])


def standardised_rule(clean_bank: torch.Tensor, groups: list[list[int]], quantile: float = 0.99) -> Rule:
    """Each group's best reading on that group's own null scale over ``clean_bank`` (N, V), then the largest."""
    scales = []
    for group in groups:
        best = clean_bank[:, group].amax(-1)
        median = best.median()
        scales.append((group, median, (torch.quantile(best, quantile) - median).clamp_min(1e-6)))
    return lambda a: torch.stack([(a[..., g].amax(-1) - m) / s for g, m, s in scales], -1).amax(-1)


def rules_for(banks: dict[str, torch.Tensor]) -> dict[str, Rule]:
    view_count = banks["clean_bits"].shape[-1]
    groups = reading_groups(view_count)
    unregistered = sum(len(g) for g in groups[:len(SCAN_ZOOMS) + 1])
    return {"best": lambda a: a.amax(-1), "unregistered": lambda a: a[..., :unregistered].amax(-1),
            "standardised": standardised_rule(banks["clean_bits"], groups)}


def shared_textures(key: bytes, message: torch.Tensor) -> int:
    """How many of ``message``'s switched-on textures ``key``'s message switches on too."""
    return int(((message_from_key(key, message.shape[-1]) > 0) & (message > 0)).sum())


def bank_threshold(rule: Rule, banks: dict[str, torch.Tensor], fpr: float = 0.01) -> float:
    """As ``detect.profile_threshold``: the largest of the banks' own thresholds at ``fpr``."""
    return max(threshold_for_fpr(rule(bank), fpr) for bank in banks.values())


def table(name: str, evidence: dict[str, torch.Tensor], conditions: list[str], levels: list[str],
          rules: dict[str, Rule], thresholds: dict[str, float], message: torch.Tensor,
          read: Callable[[torch.Tensor], torch.Tensor]) -> list[str]:
    """``read``: (..., V, E) evidence -> (..., V) agreements with ``message``, the evaluation key's."""
    kinds = ["clean", *(f"{kind}@{p}" for p in levels for kind in ("marked", "other"))]
    readings = {kind: read(evidence[kind]) for kind in kinds}                    # each (N, C, V), read once
    lines = [f"\n{name}: {readings['clean'].shape[0]} images"]
    for rule_name, rule in rules.items():
        t = thresholds[rule_name]
        scores = {kind: rule(agreements) for kind, agreements in readings.items()}
        others = torch.cat([scores[f"other@{p}"] for p in levels])
        lines.append(f"  {rule_name} (threshold {t:.3f}): pooled FPR clean {(scores['clean'] > t).float().mean():.2%}, "
                     f"other keys {(others > t).float().mean():.2%}")
        lines.append("    other keys, per key (textures shared with the evaluation key's 16): " + "; ".join(
            f"key {key} ({shared_textures(other_key(key), message)}): "
            + " ".join(f"p={p} {(scores[f'other@{p}'][evidence['other_key_index'] == key] > t).float().mean():.1%}"
                       for p in levels)
            for key in sorted(set(evidence["other_key_index"].tolist()))))
        equal = {f: threshold_for_fpr(scores["clean"], f) for f in (0.005, 0.01)}
        for p in levels:
            found = (scores[f"marked@{p}"] > t).float().mean(0) * 100
            cells = " ".join(f"{c}={v:.0f}" for c, v in zip(conditions, found.tolist(), strict=True))
            pooled = {f: (scores[f"marked@{p}"] > e).float().mean() for f, e in equal.items()}
            lines.append(f"    p={p}: found % {cells}")
            lines.append(f"    p={p}: found at the data set's own pooled clean FPR 0.5% / 1%: "
                         f"{pooled[0.005]:.1%} / {pooled[0.01]:.1%}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evidence", nargs="+", help="files written by gwm eval --save-evidence")
    parser.add_argument("--model", default=None, help="model folder whose bank sets the thresholds (default: "
                                                      "the one the first file names)")
    parser.add_argument("--matched-weight", type=float, default=MATCHED_WEIGHT,
                        help="the matched filter's share of the agreement (default: the shipped one)")
    parser.add_argument("--matched-present", type=float, default=MATCHED_PRESENT,
                        help="|c| above which a switched-off texture counts against the key (default: shipped)")
    args = parser.parse_args(argv)
    loaded = [(Path(path), *read_evidence(Path(path))) for path in args.evidence]
    bundle = load_banked_model(Path(args.model or loaded[0][2]["model"]))
    message = message_from_key(EVAL_KEY, bundle.n_bits)

    def read(evidence: torch.Tensor) -> torch.Tensor:
        return reading_agreements(evidence, message, args.matched_weight, args.matched_present)

    banks = {name: read(bundle.calibration[name].float()) for name in NEGATIVE_BANKS if name in bundle.calibration}
    rules = rules_for(banks)
    thresholds = {name: bank_threshold(rule, banks) for name, rule in rules.items()}
    for path, evidence, metadata in loaded:
        print("\n".join(table(path.stem, evidence, metadata["conditions"].split(","), metadata["levels"].split(","),
                              rules, thresholds, message, read)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
