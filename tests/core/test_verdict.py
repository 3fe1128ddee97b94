"""The model-level verdict: its p-value holds under the null, it is reproducible, and direct copies pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gwm_desktop.core.key_rank import one_group
from gwm_desktop.core.keys import message_from_key, random_messages, texture_signs
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.random_keys import MessageTable, message_scores, null_messages
from gwm_desktop.core.verdict import image_terms, set_verdict, verdict_job

N_BITS = 32
ONE = one_group(2)  # the synthetic evidence below has 2 readings an image


def key_independent_evidence(n_images: int, seed: int) -> np.ndarray:
    """(N, 2 views, 2 n_bits) evidence drawn without any key: what the shipped model sees in clean images."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.5, (n_images, 2, 2 * N_BITS)).astype(np.float32)


@pytest.mark.parametrize("width", [N_BITS, 2 * N_BITS])
def test_fast_scores_are_the_detectors_agreement(width):
    evidence = torch.randn(5, 2, width) * 2
    messages = random_messages(40, N_BITS, torch.Generator().manual_seed(1))
    expected = WatermarkDetector.best_agreement(evidence[:, None].double().expand(-1, 40, -1, -1), messages.double())
    assert torch.allclose(message_scores(evidence, MessageTable.of(messages)), expected, atol=1e-12)


def test_terms_in_chunks_are_the_one_pass_terms(monkeypatch):
    import gwm_desktop.core.random_keys as random_keys

    evidence = torch.randn(5, 2, 2 * N_BITS) * 2
    table = MessageTable.of(random_messages(1_000, N_BITS, torch.Generator().manual_seed(2)))
    one_pass = image_terms(evidence, table, [([0], 0.7), ([1], 0.3)])
    monkeypatch.setattr(random_keys, "_CHUNK_ELEMENTS", 2_000)  # 5 images x 2 views: 256 keys a chunk, 4 chunks
    assert len(list(random_keys.chunks(5, 2, len(table)))) == 4
    # the same up to float64 rounding (a BLAS may sum a smaller block of messages in another order)
    assert torch.allclose(image_terms(evidence, table, [([0], 0.7), ([1], 0.3)]), one_pass, rtol=1e-12, atol=1e-12)


def test_random_keys_are_seeded_and_never_the_true_key():
    drawn = null_messages(torch.ones(N_BITS), 500, seed=7)
    assert torch.equal(drawn, null_messages(torch.ones(N_BITS), 500, seed=7))
    true = drawn[123].clone()  # a message the seeded draw produces: it must be replaced
    fresh = null_messages(true, 500, seed=7)
    assert not (fresh == true).all(dim=-1).any()
    assert (fresh.sum(-1) == 0).all()  # still balanced


def test_same_images_and_key_give_the_same_verdict():
    evidence = key_independent_evidence(6, 0)
    message = message_from_key(b"k" * 32, N_BITS)
    first, second = set_verdict(evidence, message, ONE, null_keys=2000), set_verdict(evidence, message, ONE, null_keys=2000)
    assert first.to_json() == second.to_json()


def test_images_in_blocks_change_nothing(monkeypatch):
    """Many images are tested a block at a time against the reference keys; one block or six, the same."""
    import gwm_desktop.core.verdict as verdict

    evidence = key_independent_evidence(6, 3)
    message = message_from_key(b"kept" * 8, N_BITS)
    whole = set_verdict(evidence, message, ONE, null_keys=3000)
    monkeypatch.setattr(verdict, "_BLOCK_ELEMENTS", 1)
    blocks = set_verdict(evidence, message, ONE, null_keys=3000)
    assert (blocks.p_value, blocks.exceedances) == (whole.p_value, whole.exceedances)
    assert blocks.statistic == pytest.approx(whole.statistic, abs=1e-9)
    assert [i.p_value for i in blocks.images] == [i.p_value for i in whole.images]


def test_an_images_term_is_a_fixed_function_of_the_message():
    """What keeps the rank exact: a message's term does not depend on the other messages tested with it."""
    evidence = torch.from_numpy(key_independent_evidence(3, 9))
    messages = random_messages(50, N_BITS, torch.Generator().manual_seed(9))
    groups = [([0], 0.7), ([1], 0.3)]
    every = image_terms(evidence, MessageTable.of(messages), groups)
    assert torch.equal(image_terms(evidence, MessageTable.of(messages[[7, 3]]), groups), every[:, [7, 3]])
    assert every.std() > 0


def test_stronger_evidence_never_scores_lower_beyond_the_reference_keys():
    """Past the best reference key the term keeps rising (a normal fit carries the tail on): a clear
    watermark is never tied with the random keys that share part of it."""
    message = message_from_key(b"strong" * 5 + b"xx", N_BITS)
    on = (message > 0).numpy()
    terms = []
    for strength in (0.5, 1.0, 2.0, 4.0):
        evidence = key_independent_evidence(1, 8)
        evidence[:, :, :N_BITS] += 3.0 * strength * message.numpy()
        evidence[:, :, N_BITS:][:, :, on] = 2.0 * strength * texture_signs(message)[on].numpy()
        terms.append(float(image_terms(torch.from_numpy(evidence), MessageTable.of(message.view(1, -1)),
                                       [([0], 0.7), ([1], 0.3)])[0, 0]))
    assert terms == sorted(terms) and len(set(terms)) == 4 and terms[-1] > 4.5  # 4.5: beyond 1 in 10,000


@pytest.mark.parametrize("groups", [ONE, [([0], 0.7), ([1], 0.3)]])
def test_false_alarm_rate_is_at_most_alpha_when_evidence_ignores_the_key(groups):
    # Under the null, the rank p-value is super-uniform: P(p <= a) <= a for every a.
    evidence = key_independent_evidence(8, 1)
    keys = random_messages(300, N_BITS, torch.Generator().manual_seed(2))
    p = np.array([set_verdict(evidence, key, groups, alpha=0.05, null_keys=199).p_value for key in keys])
    for alpha, allowed in ((0.05, 0.09), (0.2, 0.26)):  # a binomial(300, alpha) upper 0.999 quantile
        assert (p <= alpha).mean() <= allowed
    assert (p <= 0.5).mean() > 0.35  # and not degenerate (always 1)


def test_one_image_gets_its_own_p_value_from_the_same_engine():
    evidence = key_independent_evidence(1, 3)
    result = set_verdict(evidence, message_from_key(b"x" * 32, N_BITS), ONE, null_keys=999)
    assert result.n == 1
    assert result.p_value == pytest.approx(result.images[0].p_value)


def test_tail_model_matches_the_monte_carlo_where_both_resolve():
    # On key-independent evidence the random keys' statistic is close to normal; the tail model must
    # agree with the Monte Carlo rank wherever the rank is well resolved (p >= 1e-3 with 20,000 keys).
    evidence = key_independent_evidence(16, 4)
    keys = random_messages(20, N_BITS, torch.Generator().manual_seed(5))
    for key in keys:
        result = set_verdict(evidence, key, ONE, null_keys=20_000)
        if result.p_value >= 1e-3:
            assert 0.5 < result.p_tail / result.p_value < 2.0


def test_the_reported_p_is_the_monte_carlo_rank_and_alpha_must_be_reachable():
    evidence = key_independent_evidence(8, 6)
    message = message_from_key(b"y" * 32, N_BITS)
    on = message > 0
    evidence[:, :, :N_BITS] += 3.0 * message.numpy()  # the key's textures, clearly present
    evidence[:, :, N_BITS:][:, :, on.numpy()] = 6.0 * texture_signs(message)[on].numpy()
    result = set_verdict(evidence, message, ONE, alpha=1e-3, null_keys=999)
    assert result.exceedances == 0 and result.p_value == 1 / 1000  # never below 1 / (K + 1)
    assert result.verdict and result.p_tail < result.p_value  # the estimate is shown, not decided on
    assert all(image.p_value >= 1 / 1000 for image in result.images)
    with pytest.raises(ValueError, match="needs at least 9,999 random keys"):
        set_verdict(evidence, message, ONE, alpha=1e-4, null_keys=999)


@pytest.mark.parametrize("groups", [[([0, 1, 2], 1.0)], [([0, 1], 0.7), ([1], 0.3)], [([0, 1], 0.0)], []])
def test_groups_that_do_not_fit_the_evidence_are_refused(groups):
    # e.g. the groups of the scan's 80 readings on the verdict's 28: a wrong test, not a slower one
    evidence = key_independent_evidence(3, 8)
    with pytest.raises(ValueError, match="group"):
        set_verdict(evidence, message_from_key(b"g" * 32, N_BITS), groups, null_keys=999)
    with pytest.raises(ValueError, match="group"):
        image_terms(torch.from_numpy(evidence), MessageTable.of(random_messages(9, N_BITS)), groups)


def test_verdict_job_skips_bad_files_and_reports_each(engine, tmp_path, paintings):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    missing = tmp_path / "missing.jpg"
    files = [paintings[0], bad, paintings[1], missing]
    steps = list(verdict_job(engine.bundle.detector, message_from_key(b"z" * 32, N_BITS), files, "cpu",
                             null_keys=999))
    result = steps[-1].payload
    assert result.n == 2 and [Path(c.path) for c in result.images] == [paintings[0], paintings[1]]
    assert {path.name for path, _ in result.errors} == {"broken.png", "missing.jpg"}


def test_a_cancelled_verdict_stops_between_blocks():
    from gwm_desktop.core.jobs import CancelToken, JobCancelled

    token = CancelToken()
    token.cancel()
    with pytest.raises(JobCancelled):
        set_verdict(key_independent_evidence(4, 7), message_from_key(b"c" * 32, N_BITS), ONE, null_keys=999,
                    cancel=token)
