"""The verdict's words: graded by the exact Monte Carlo p-value, never "proof"."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gwm_desktop.core.verdict import VerdictResult
from gwm_desktop.core.verdict_text import details, headline

BASE = VerdictResult(n=32, p_value=0.5, p_monte_carlo=0.5, p_tail=0.5, p_method="monte carlo", exceedances=50_000,
                     null_keys=100_000, seed=1, statistic=0.0, effect_z=0.0, alpha=0.001, verdict=False)


@pytest.mark.parametrize(("p_mc", "starts", "odds"), [
    (1 / 100_001, "Strong evidence", "less than 1 time in 100,000."),
    (5e-4, "Evidence", "less than 1 time in 1,000."),
    (5e-3, "Weak evidence", "less than 1 time in 100."),
    (0.05, "No evidence", "about 1 time in 20."),
    (0.63, "No evidence", "often (about 63 times in 100)."),
])
def test_headline_grades(p_mc, starts, odds):
    text = headline(replace(BASE, p_monte_carlo=p_mc, p_value=p_mc))
    assert text.startswith(starts + ": a model that never learned your watermark would produce images like these")
    assert odds in text and "proof" not in text.lower()


def test_a_tail_estimate_never_strengthens_the_words_beyond_the_exact_test():
    result = replace(BASE, p_monte_carlo=1 / 1001, p_value=1e-30, p_tail=1e-30, p_method="tail model",
                     exceedances=0, null_keys=1000, verdict=True)
    assert "less than 1 time in 1,000." in headline(result) and headline(result).startswith("Evidence:")
    assert "an estimate" in details(result)
