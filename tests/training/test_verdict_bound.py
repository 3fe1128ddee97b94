"""The bound measurement runs end to end on a few real images, and its shortcut is the app's statistic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gwm_desktop.core.keys import random_messages
from gwm_desktop.core.random_keys import NULL_SEED, MessageTable
from gwm_desktop.core.verdict import set_verdict
from training.verdict_sets import SetScores, clopper_pearson


def test_set_scores_reproduce_set_verdict():
    rng = np.random.default_rng(0)
    evidence = rng.normal(0, 1.5, (12, 2, 64))
    null = MessageTable.of(random_messages(999, 32, torch.Generator().manual_seed(NULL_SEED)))
    tested = random_messages(5, 32, torch.Generator().manual_seed(3))
    scores = SetScores.build(torch.from_numpy(evidence), null, MessageTable.of(tested), [([0, 1], 1.0)])
    sets = np.stack([rng.choice(12, 4, replace=False) for _ in range(5)])
    p_mc, p_tail, _ = scores.p_values(sets, np.arange(5))
    for j in range(5):
        app = set_verdict(evidence[sets[j]], tested[j], [([0, 1], 1.0)], null_keys=999)
        assert app.p_value == p_mc[j] and abs(app.p_tail - p_tail[j]) < 1e-9


@pytest.mark.parametrize(("hits", "trials"), [(6, 2000), (0, 2000), (88, 10_000), (2000, 2000), (1, 3)])
def test_clopper_pearson_is_the_exact_beta_interval(hits, trials):
    beta = pytest.importorskip("scipy.stats").beta
    low = 0.0 if hits == 0 else beta.ppf(0.025, hits, trials - hits + 1)
    high = 1.0 if hits == trials else beta.ppf(0.975, hits + 1, trials - hits)
    assert clopper_pearson(hits, trials) == pytest.approx((low, high), abs=1e-10)


def test_script_writes_the_figures(tmp_path, portraits, monkeypatch):
    import training.verdict_bound as bound
    from training.verdict_bound import main

    tables = []

    def recording(messages: torch.Tensor) -> MessageTable:
        tables.append(messages)
        return MessageTable.of(messages)

    monkeypatch.setattr(bound, "MessageTable", type("Recording", (), {"of": staticmethod(recording)}))
    out = tmp_path / "bound.json"
    assert main(["--data", str(portraits[0].parent), "--max-per-source", "10", "--sets", "40", "--sizes", "4",
                 "--null-keys", "999", "--null-conditions", "none,flip", "--other-conditions", "jpeg75",
                 "--other-keys", "2", "--direct-images", "8", "--direct-levels", "0.05", "--direct-sets", "5",
                 "--power-sizes", "4", "--power-conditions", "crop0.8", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert all(report["null"]["clean"][c]["4"]["0.001"]["sets"] == 40 for c in ("none", "flip"))
    assert report["direct"]["0.05"]["crop0.8"]["share_at_floor"] == 1.0  # p = 1 / 1000, the least 999 keys give
    assert report["power"]["crop0.8"]["4"]["0.001"] == 1.0
    # every null set had a tested key of its own: 40 sets in each of the 3 cells, no key shared
    tested = torch.cat([t for t in tables if len(t) == 40])
    assert len(tested) == 120 and len(torch.unique(tested, dim=0)) == 120
