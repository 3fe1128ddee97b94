"""The verdict in words a non-statistician reads correctly: one home for the wording the CLI, the GUI
and the evidence report share. It never says "proof".

The words come from the Monte Carlo p-value, which is exact: with 100,000 random keys and none
scoring as high as the artist's, p = 1 / 100,001, so "less than 1 time in 100,000" is what the test
itself shows. The grade never contradicts the decision at the artist's alpha. The tail model's
smaller estimates stay in the numbers (``details``), marked as an estimate."""

from __future__ import annotations

from gwm_desktop.core.verdict import VerdictResult

# (below this p, grade) from strongest to weakest; anything else is "No evidence".
GRADES = ((1e-5, "Strong evidence"), (1e-3, "Evidence"), (1e-2, "Weak evidence"))
_MAX_POWER = 9  # "less than 1 time in 1,000,000,000" is as far as the wording goes


def grade(p_value: float) -> str:
    return next((name for bound, name in GRADES if p_value < bound), "No evidence")


def odds(p_value: float) -> str:
    """p -> "less than 1 time in 100,000" (the tightest power of ten it is below), "about 1 time in 40",
    or "often (about 63 times in 100)"."""
    power = next((k for k in range(_MAX_POWER, 1, -1) if p_value < 10.0**-k), None)
    if power is not None:
        return f"less than 1 time in {10**power:,}"
    if p_value < 0.1:
        return f"about 1 time in {round(1 / p_value):,}"
    return f"often (about {round(100 * p_value)} times in 100)"


def decided_grade(result: VerdictResult) -> str:
    """``grade`` of the p-value, held to the decision at the result's alpha: a positive verdict is at least
    "Evidence", a negative one at most "Weak evidence"."""
    name = grade(result.p_value)
    if result.verdict and name in ("Weak evidence", "No evidence"):
        return "Evidence"
    if not result.verdict and name in ("Strong evidence", "Evidence"):
        return "Weak evidence"
    return name


def headline(result: VerdictResult) -> str:
    """One or two sentences: the grade, then how often a model without the watermark would do this."""
    name = decided_grade(result)
    adjusted = name != grade(result.p_value)
    label = f"{name} at your chosen level (alpha {result.alpha:g})" if adjusted and result.verdict else name
    sentence = (f"{label}: a model that never learned your watermark would produce images like these "
                f"{odds(result.p_value)}.")
    if adjusted and not result.verdict:
        sentence += f" That is short of your chosen level (alpha {result.alpha:g})."
    elif name == "Weak evidence":
        sentence += " Not enough on its own: add more of the model's images."
    elif name == "No evidence":
        sentence += (" This does not show the model never saw your art: a short fine-tune can pick up a style "
                     "before it carries the watermark, and more of its images, or images closer to your style, "
                     "may still show it.")
    return sentence


def details(result: VerdictResult) -> str:
    """The numbers behind the headline, one per line."""
    lines = [f"Images tested: {result.n}" + (f" ({len(result.errors)} unreadable, skipped)" if result.errors else ""),
             f"p-value: {result.p_value:.3g} (Monte Carlo: {result.exceedances:,} of {result.null_keys:,} "
             "random keys scored at least as high)",
             f"Tail estimate: {result.p_tail:.3g} (a normal fit of the random keys' scores; an estimate, not a bound)",
             f"Effect: the true key stands {abs(result.effect_z):.1f} standard deviations "
             + ("above" if result.effect_z >= 0 else "below") + " the random keys' average",
             f"Decision at alpha = {result.alpha:g}: "
             + ("the model learned this watermark" if result.verdict else "not established")]
    return "\n".join(lines)
