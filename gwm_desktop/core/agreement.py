"""How the matched filter's per-texture statistics become an agreement with a key (``matched_agreement``).

The detector's ``WatermarkDetector.agreement`` mixes it with the CNN's bit agreement; the verdict's
fast path (``core.verdict``) computes the same for many keys at once from these constants.
"""

from __future__ import annotations

import torch

from gwm_desktop.core.keys import texture_signs

# How the matched filter's statistics become an agreement (``matched_agreement``), chosen on 60 eval
# portraits at p = 0.01 (README, "Matched filter"): the switched-on textures should correlate with the
# key's signs (tanh(c / 2)); a switched-off texture found with either sign (|c| > 2) is another key's.
MATCHED_WEIGHT = 0.6     # share of the matched filter in the combined agreement
MATCHED_PRESENT = 2.0    # |c| above which a switched-off texture counts against the key


def matched_agreement(coherent: torch.Tensor, message: torch.Tensor, present_at: float = MATCHED_PRESENT) -> torch.Tensor:
    """(..., n_bits) statistics x (..., n_bits) message -> (...) in [-2, 1] (``present_at``: other values
    only to measure them, ``training.view_join``)."""
    on = (message > 0).to(coherent.dtype)
    off = 1 - on
    signed = coherent * texture_signs(message).to(coherent)
    present = torch.tanh(signed / 2) * on
    stray = torch.relu(torch.tanh((coherent.abs() - present_at) / 2)) * off
    return present.sum(-1) / on.sum(-1).clamp_min(1) - stray.sum(-1) / off.sum(-1).clamp_min(1)
