"""The verdict's words: graded by the exact Monte Carlo p-value, never "proof"."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gwm_desktop.core.verdict import VerdictResult
from gwm_desktop.core.verdict_text import details, headline

BASE = VerdictResult(n=32, p_value=0.5, p_tail=0.5, exceedances=50_000,
                     null_keys=100_000, seed=1, statistic=0.0, effect_z=0.0, alpha=0.001, verdict=False)


@pytest.mark.parametrize(("p_mc", "starts", "odds"), [
    (1 / 100_001, "Strong evidence", "less than 1 time in 100,000."),
    (5e-4, "Evidence", "less than 1 time in 1,000."),
    (5e-3, "Weak evidence", "less than 1 time in 100."),
    (0.05, "No evidence", "about 1 time in 20."),
    (0.63, "No evidence", "often (about 63 times in 100)."),
])
def test_headline_grades(p_mc, starts, odds):
    text = headline(replace(BASE, p_value=p_mc, verdict=p_mc <= BASE.alpha))
    assert text.startswith(starts + ": a model that never learned your watermark would produce images like these")
    assert odds in text and "proof" not in text.lower()


def test_a_tail_estimate_never_strengthens_the_words_beyond_the_exact_test():
    result = replace(BASE, p_value=1 / 1001, p_tail=1e-30, exceedances=0, null_keys=1000, verdict=True)
    assert "less than 1 time in 1,000." in headline(result) and headline(result).startswith("Evidence:")
    assert "an estimate, not a bound" in details(result)


def test_the_words_never_contradict_the_decision_at_the_chosen_alpha():
    loose = headline(replace(BASE, p_value=0.03, alpha=0.05, verdict=True))
    assert loose.startswith("Evidence at your chosen level (alpha 0.05): ") and "No evidence" not in loose
    strict = headline(replace(BASE, p_value=5e-4, alpha=1e-4, verdict=False))
    assert strict.startswith("Weak evidence: ") and "short of your chosen level (alpha 0.0001)" in strict


def test_no_evidence_says_it_is_not_a_clearance():
    """A miss is not proof the art was unused: in the miniature, short fine-tunes took on a good part of
    the subject's look without carrying the watermark (training/miniature/README.md)."""
    text = headline(replace(BASE, p_value=0.63))
    assert "does not show the model never saw your art" in text and "before it carries the watermark" in text
    assert "does not show" not in headline(replace(BASE, p_value=1e-5, verdict=True))
