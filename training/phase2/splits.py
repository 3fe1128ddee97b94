"""Which prompts and seeds each split of a Phase 2 run uses: disjoint prompts, never a seed twice.

The model personalized on X_w draws its seeds apart from its clean twin's (``MARKED_SEED_OFFSET``):
a suspect model an artist meets is not their own clean twin sampled at the same noise, so S and S_w
share no (prompt, seed) pair unless a run asks for the pairing of earlier runs (``paired_seeds``).
"""

from __future__ import annotations

import random

HELDOUT_SEED_OFFSET = 100_000
VALIDATION_SEED_OFFSET = 50_000
VERDICT_SEED_OFFSET = 150_000   # extra held-out images for measuring the model-level verdict (miniature)
MARKED_SEED_OFFSET = 1_000_000
SPLIT_SEED_OFFSETS = {"train": 0, "validation": VALIDATION_SEED_OFFSET, "heldout": HELDOUT_SEED_OFFSET,
                      "verdict": VERDICT_SEED_OFFSET}


def split_prompts(prompts: list[str], n_train: int, n_heldout: int, seed: int,
                  n_validation: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Disjoint (training, held-out, validation) prompts, drawn from a seeded shuffle of the list."""
    if n_train + n_heldout + n_validation > len(prompts):
        raise ValueError(f"{n_train} training + {n_heldout} held-out + {n_validation} validation prompts requested, "
                         f"but only {len(prompts)} given")
    order = list(prompts)
    random.Random(seed).shuffle(order)
    heldout_end = n_train + n_heldout
    return order[:n_train], order[n_train:heldout_end], order[heldout_end:heldout_end + n_validation]


def distinct_seeds(first: int, n_prompts: int, per_prompt: int) -> list[list[int]]:
    """One list of ``per_prompt`` seeds for each prompt, no seed used twice.

    Why not the same seeds for every prompt: the seed fixes the starting noise, and in a small model
    (the miniature) it decides an image's composition more than the prompt does, so shared seeds made
    a split's images near-copies of one another across prompts, and validation images near-copies of
    the training ones.
    """
    return [[first + j * per_prompt + i for i in range(per_prompt)] for j in range(n_prompts)]



def split_seeds(run_seed: int, split: str, marked: bool, n_prompts: int, per_prompt: int,
                paired: bool = False) -> list[list[int]]:
    """The seeds (one list per prompt) of one split of one model: the clean model's, or the model
    personalized on X_w's (its own seeds unless ``paired``). Every list is disjoint from every other
    split's and model's while a split holds fewer than ``VALIDATION_SEED_OFFSET`` images."""
    if n_prompts * per_prompt >= VALIDATION_SEED_OFFSET:
        raise ValueError(f"at most {VALIDATION_SEED_OFFSET - 1} images per split, got {n_prompts * per_prompt}")
    first = run_seed + SPLIT_SEED_OFFSETS[split] + (MARKED_SEED_OFFSET if marked and not paired else 0)
    return distinct_seeds(first, n_prompts, per_prompt)
