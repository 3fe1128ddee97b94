"""The file ``gwm eval --save-evidence`` writes and ``training.view_join`` reads: every evaluated image's
per-view detector evidence, so other ways of reading it can be measured without scoring again.

Tensors (float16): ``clean`` (N, conditions, views, E), ``marked@P`` and ``other@P`` per level P, and
``other_key_index`` (N,): which ``evaluate.other_key`` each image's other-key copy carries. Metadata:
``conditions`` and ``levels`` (comma-separated), and where the figures came from (model, data, split).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gwm_desktop.core.atomic import write_atomic


def write_evidence(path: Path, clean: list[torch.Tensor], marked: dict[float, list[torch.Tensor]],
                   other: dict[float, list[torch.Tensor]], other_index: list[int], conditions: tuple[str, ...],
                   about: dict[str, str]) -> None:
    """One safetensors file, written atomically; ``marked``/``other``: per level, one (C, V, E) per image."""
    from safetensors.torch import save

    tensors = {"clean": torch.stack(clean).half(), "other_key_index": torch.tensor(other_index)}
    for p in marked:
        tensors[f"marked@{p:g}"] = torch.stack(marked[p]).half()
        tensors[f"other@{p:g}"] = torch.stack(other[p]).half()
    metadata = {**about, "conditions": ",".join(conditions), "levels": ",".join(f"{p:g}" for p in marked)}
    write_atomic(path, save(tensors, metadata=metadata))


def read_evidence(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A ``write_evidence`` file: its tensors (float, the index as written) and its metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    tensors = load_file(str(path))
    return {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}, metadata
