"""The Phase 2 report as Markdown (``render_markdown``) and its atomic writing next to its JSON.

The report itself (a dict: held-out metrics per detector and method, prompts and seeds, what the
validation images chose) is built by ``pipeline.Phase2Run.evaluate``; this module only presents it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gwm_desktop.core.atomic import write_atomic


def percent(value: float | None) -> str:
    """0.925 -> '92.5%'; None or NaN -> 'n/a'."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def number(value: float | None) -> str:
    """0.9751 -> '0.975'; None or NaN -> 'n/a'."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def render_markdown(report: dict[str, Any]) -> str:
    cfg = report["config"]
    subject = report["subject"]
    notes = [
        f"Base model `{cfg['base']}`; {subject['n_images']} subject images, {subject['n_watermarked']} watermarked "
        f"(fraction {report['watermark_fraction']:g}, LPIPS budget p = {cfg['p']:g}, mean LPIPS "
        f"{number(subject['mean_lpips'])}).",
        f"Held out: {len(report['prompts']['heldout'])} prompts never used in fine-tuning x "
        f"{_seeds_each(report['prompts']['heldout_seeds'])} seeds each, "
        + ("every seed different and none used in training." if _per_prompt(report['prompts']['heldout_seeds'])
           else "the same seeds for every prompt, disjoint from training."),
        ("S and S_w from the same (prompt, seed) pairs (paired seeds, as before issue 14)."
         if report["prompts"].get("paired_seeds", True) else
         "S_w's seeds are its own, none shared with S: the clean twin is not the suspect model's copy."),
        "Accuracy: at the detector's own decision (score 0.5); accuracy (CV): threshold picked on half of the "
        "held-out images, measured on the other half; TPR@1%FPR: threshold from the clean held-out images.",
        *_selection_lines(report),
    ]
    lines = [
        "# Phase 2 report",
        "",
        *(f"- {note}" for note in notes),
        "",
        "## Phase 1 detector vs Phase 2 detector (same held-out S / S_w)",
        "",
        "| method | detector | accuracy | accuracy (CV) | AUC | TPR@1%FPR | n |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, phase2 in report["phase2_detector"].items():
        for label, m in (("Phase 1", report["phase1_detector"][method]), ("Phase 2", phase2)):
            lines.append(f"| {method} | {label} | {percent(m['accuracy'])} | {percent(m['accuracy_cv'])} | {number(m['auc'])} "
                         f"| {percent(m['tpr_at_1pct_fpr'])} | {m['n']} |")
    lines += _verdict_lines(report.get("verdict"))
    tested = list(report["phase2_detector"])
    lines += ["", "## Cross-method (rows: fine-tuned on; columns: tested on; accuracy / AUC)", "",
              "| fine-tuned on | " + " | ".join(tested) + " |", "|---|" + "---|" * len(tested)]
    for name, results in report["cross_method"].items():
        cells = [f"{percent(results[t]['accuracy'])} / {number(results[t]['auc'])}" for t in tested]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Elapsed: {report['elapsed_s']:.0f} s.", ""]
    return "\n".join(lines)


def p_text(verdict: dict[str, Any] | None) -> str:
    """A verdict's Monte Carlo p-value as the report prints it (never below 1 / (K + 1)); "n/a" without one."""
    return "n/a" if verdict is None else f"{verdict['p_value']:.2g}"


def _verdict_lines(verdicts: dict[str, Any] | None) -> list[str]:
    """The model-level verdict per personalized model (``results.model_verdicts``); none in older reports."""
    if not verdicts:
        return []
    decided = [v for models in verdicts.values() for v in models.values() if v is not None]
    if not decided:
        return ["", "## Model-level verdict", "", "No model had readable held-out images to test."]
    alpha = decided[0]["alpha"]
    lines = ["", "## Model-level verdict (held-out images of each model; Phase 1 detector, the run's key)", "",
             f"`gwm verdict` on each model's held-out images: could a model that never learned this key's "
             f"watermark make images like these? Verdict when p <= {alpha:g}.", "",
             "| method | model | n | p-value | effect z | verdict |", "|---|---|---|---|---|---|"]
    for method, models in verdicts.items():
        for label, name in (("marked", "personalized on X_w"), ("clean", "clean twin (on X)")):
            v = models[label]
            if v is None:
                lines.append(f"| {method} | {name} | 0 | n/a | n/a | no readable held-out images |")
                continue
            lines.append(f"| {method} | {name} | {v['n']} | {p_text(v)} | "
                         f"{v['effect_z']:.2f} | {'learned the watermark' if v['verdict'] else 'no verdict'} |")
    return lines


def _per_prompt(seeds: list[Any]) -> bool:
    """Whether a report's seeds are one list per prompt (older reports hold one list for every prompt)."""
    return bool(seeds) and isinstance(seeds[0], list)


def _seeds_each(seeds: list[Any]) -> int:
    return len(seeds[0]) if _per_prompt(seeds) else len(seeds)


def _selection_lines(report: dict[str, Any]) -> list[str]:
    chosen = {name: sel for name, sel in (report.get("selection") or {}).items() if sel}
    if not chosen:
        return []
    steps = ", ".join(f"{name} step {sel['chosen_step']}" for name, sel in chosen.items())
    n = len(report["prompts"].get("validation", []))
    return [f"Validation: {n} more prompt{'s' if n != 1 else ''} with seeds of their own, never trained on, chose "
            f"each Phase 2 detector's kept step (0: the Phase 1 detector) and its decision threshold: {steps}."]


def write_report(report: dict[str, Any], json_path: Path, md_path: Path) -> None:
    for path, text in ((json_path, json.dumps(report, indent=2) + "\n"), (md_path, render_markdown(report))):
        write_atomic(path, text.encode("utf-8"))


__all__ = ["number", "p_text", "percent", "render_markdown", "write_report"]
