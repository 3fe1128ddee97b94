"""Many keys at once: the seeded random messages that the key-exchangeability tests rank a profile's
message against (the model-level verdict, ``verdict``; the scanner's per-image test, ``key_rank``),
and every message's agreement with the detector's evidence in a few matrix products.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from gwm_desktop.core.agreement import MATCHED_PRESENT, MATCHED_WEIGHT
from gwm_desktop.core.keys import random_messages, texture_signs

NULL_SEED = 14_2026  # fixed, so the same images and key always give the same verdict
_CHUNK_ELEMENTS = 8_000_000  # scores held at once (images x views x messages), ~64 MB in float64


@dataclass
class MessageTable:
    """Messages prepared for fast scoring: (K, n_bits) messages in float32 (scored in float64), and
    ``weights`` (K, 3 n_bits), each message's coefficients on ``reading_features`` (its bits, its
    switched-on bits times their texture sign over their count, its switched-off bits over theirs),
    so every reading's agreement with every message is one matrix product (``reading_scores``).
    """

    messages: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def of(cls, messages: torch.Tensor) -> MessageTable:
        messages = messages.float()  # {-1, 0, 1}: exact in float32, half the memory of float64
        on = (messages > 0).float()
        off = 1 - on
        on_count, off_count = on.sum(-1, keepdim=True).clamp_min(1), off.sum(-1, keepdim=True).clamp_min(1)
        return cls(messages, torch.cat([messages, on * texture_signs(messages) / on_count, off / off_count], dim=-1))

    def __len__(self) -> int:
        return self.messages.shape[0]

    def rows(self, start: int, stop: int) -> MessageTable:
        return MessageTable(self.messages[start:stop], self.weights[start:stop])


def null_messages(true_message: torch.Tensor, count: int, seed: int = NULL_SEED) -> torch.Tensor:
    """(count, n_bits) random balanced messages from a seeded generator, none equal to the true one."""
    n_bits = true_message.shape[-1]
    generator = torch.Generator().manual_seed(seed)
    drawn = random_messages(count, n_bits, generator)
    target = true_message.view(1, -1).to(drawn)
    while True:
        same = (drawn == target).all(dim=-1)
        if not same.any():
            return drawn
        drawn[same] = random_messages(int(same.sum()), n_bits, generator)


@functools.lru_cache(maxsize=4)
def seeded_table(count: int, n_bits: int, seed: int) -> MessageTable:
    """The seeded random messages, whatever the key tested, prepared once per process (drawing and
    signing 10^6 takes seconds; the verdict holds two: its random keys and its reference keys)."""
    return MessageTable.of(null_messages(torch.zeros(n_bits), count, seed))  # all-zero: never a real message


def null_table(true_message: torch.Tensor, count: int, seed: int = NULL_SEED) -> MessageTable:
    """``MessageTable.of(null_messages(...))``, from the per-process cache when the true message is not
    among the seeded draws (as good as always: there are C(32, 16), about 6 x 10^8, messages)."""
    cached = seeded_table(count, true_message.shape[-1], seed)
    if not (cached.messages == true_message.view(1, -1).to(cached.messages)).all(dim=-1).any():
        return cached
    return MessageTable.of(null_messages(true_message, count, seed))


def reading_features(evidence: torch.Tensor, n_bits: int) -> torch.Tensor:
    """(R, E) readings -> (R, n_bits) or (R, 3 n_bits): the terms of ``WatermarkDetector.agreement``
    that do not depend on the message, each scaled by its weight in it (``MessageTable.weights``)."""
    soft = torch.tanh(evidence[:, :n_bits]) / n_bits
    if evidence.shape[-1] == n_bits:
        return soft
    coherent = evidence[:, n_bits:]
    stray = torch.relu(torch.tanh((coherent.abs() - MATCHED_PRESENT) / 2))
    return torch.cat([(1 - MATCHED_WEIGHT) * soft, MATCHED_WEIGHT * torch.tanh(coherent / 2),
                      -MATCHED_WEIGHT * stray], dim=-1)


def reading_scores(evidence: torch.Tensor, table: MessageTable, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(N, V, E) evidence x K messages -> (N, V, K) each reading's agreement, as ``WatermarkDetector.agreement``.

    The agreement is linear in the message once each texture's sign is folded in (tanh is odd), so
    K messages cost one matrix product instead of K detector passes.
    """
    n_images, n_views, width = evidence.shape
    n_bits = table.messages.shape[-1]
    features = reading_features(evidence.reshape(n_images * n_views, width).to(dtype), n_bits)
    return (features @ table.weights[:, :features.shape[-1]].to(dtype).T).view(n_images, n_views, -1)


def message_scores(evidence: torch.Tensor, table: MessageTable) -> torch.Tensor:
    """(N, V, E) evidence x K messages -> (N, K) best-view agreements, as ``WatermarkDetector.best_agreement``."""
    return reading_scores(evidence, table).amax(dim=1)


def chunks(n_images: int, n_views: int, count: int) -> Iterator[tuple[int, int]]:
    step = max(256, _CHUNK_ELEMENTS // max(1, n_images * n_views))
    for start in range(0, count, step):
        yield start, min(count, start + step)
