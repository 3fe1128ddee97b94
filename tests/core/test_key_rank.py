"""The scanner's per-image key-rank test: a p-value whatever the image, and the groups it joins."""

import pytest
import torch

from gwm_desktop.core.key_rank import (
    UNMOVED_SHARE,
    KeyRankTest,
    group_best,
    joined_tails,
    null_keys_for,
    reading_groups,
    tail_shares,
)
from gwm_desktop.core.keys import message_from_key, random_messages, texture_signs
from gwm_desktop.core.models import READINGS, WatermarkDetector
from gwm_desktop.core.random_keys import MessageTable, reading_scores

N_BITS = 32


def test_tail_shares_count_every_message_at_least_as_high_ties_included():
    scores = torch.tensor([[0.5, 0.1, 0.5, 0.9]])
    assert torch.equal(tail_shares(scores), torch.tensor([[3, 4, 3, 1]]) / 4)


def test_joined_tails_are_the_same_function_of_every_message():
    """Exchangeability needs the statistic to treat the profile's message like any other: permuting the
    messages permutes the joined tails."""
    readings = torch.randn(3, 28, 50)
    groups = [([0, 5], 0.7), ([r for r in range(28) if r not in (0, 5)], 0.3)]
    order = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(joined_tails(readings[..., order], groups), joined_tails(readings, groups)[..., order])


@pytest.mark.parametrize("group", [[0, 5], [1, 2, 3, 4, 6, 7, 27], [9], list(range(28))])
def test_a_groups_best_reading_is_the_maximum_over_its_readings(group):
    readings = torch.randn(3, 28, 50)
    assert torch.equal(group_best(readings, group), readings[:, group].amax(dim=1))


def test_the_shipped_detector_ranks_its_unmoved_readings_apart(engine):
    detector = engine.shipped().detector
    groups = reading_groups(detector, detector.view_count)
    assert groups[0] == ([0, READINGS], UNMOVED_SHARE)
    assert sorted(groups[0][0] + groups[1][0]) == list(range(detector.view_count))
    assert groups[1][1] == pytest.approx(1 - UNMOVED_SHARE)
    # the previous model (fixed frame, two views read once each): one group
    previous = engine.shipped("previous").detector
    assert reading_groups(previous, previous.view_count) == [(list(range(previous.view_count)), 1.0)]


def test_more_random_keys_for_stricter_rates():
    assert null_keys_for(0.05) == null_keys_for(0.01) == 999
    assert null_keys_for(0.001) == 9_999


def test_under_the_null_at_most_the_rate_is_flagged_whatever_the_evidence():
    """Key-independent evidence (heavy-tailed, correlated across readings, as an image's texture makes
    it), a fresh profile key and a fresh draw of random keys per trial: the share with p <= 0.01 stays
    at the rate (6,000 tests; binomial sd about 0.0013). With the random keys' seed fixed, as in the app,
    the rate over images is the tail mass above that draw's quantile, near the rate over many images."""
    detector = WatermarkDetector(n_bits=N_BITS, working_size=64, spectrum_crop=32, isotropic=True, tile=32,
                                 matched_filter=True)
    generator = torch.Generator().manual_seed(4)
    evidence = torch.randn(4, 28, 2 * N_BITS, generator=generator) * 3
    evidence = evidence + torch.randn(4, 1, 2 * N_BITS, generator=generator) * 4  # shared across readings
    keys = random_messages(1500, N_BITS, torch.Generator().manual_seed(5))
    p = torch.cat([KeyRankTest(detector, key, 999, seed=100 + i).p_values(evidence) for i, key in enumerate(keys)])
    assert p.min() >= 1 / 1000
    assert float((p <= 0.01).float().mean()) <= 0.01 + 3 * 0.0013


def test_a_message_the_evidence_carries_gets_the_smallest_p():
    detector = WatermarkDetector(n_bits=N_BITS, working_size=64, spectrum_crop=32, isotropic=True, tile=32,
                                 matched_filter=True)
    message = message_from_key(b"carried" * 4 + b"....", N_BITS)
    table = MessageTable.of(message.view(1, -1))
    evidence = torch.randn(2, 28, 2 * N_BITS, generator=torch.Generator().manual_seed(6)) * 0.3
    evidence[0, 0, :N_BITS] += 3 * message                      # as-is, unmoved: CNN bits and ...
    evidence[0, 0, N_BITS:] += 4 * texture_signs(message) * (message > 0)  # ... signed textures
    assert float(reading_scores(evidence, table)[0, 0, 0]) > 0.5
    p = KeyRankTest(detector, message, 999).p_values(evidence)
    assert p[0] == 1 / 1000 and p[1] > 0.01
