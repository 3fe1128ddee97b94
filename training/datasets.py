"""Image-folder datasets for Phase 1, with a deterministic train / calibration / evaluation split.

The split hashes each file's name, so it is stable across machines and runs: evaluation and
calibration images are never seen in training, whatever order the folders list in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from gwm_desktop.core.generator import WORKING_SIZE

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}
SPLITS = ("train", "calibration", "eval", "all")


def split_of(path: Path) -> str:
    """1/6 eval, 1/6 calibration, 4/6 train, by a hash of the file name."""
    bucket = int(hashlib.sha256(path.name.encode("utf-8")).hexdigest(), 16) % 6
    return {0: "eval", 1: "calibration"}.get(bucket, "train")


def list_images(folders: Iterable[Path], split: str = "all") -> list[Path]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder not found: {folder}")
        for path in sorted(folder.rglob("*")):
            wanted = split == "all" or split_of(path) == split
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and wanted:
                found.append(path)
    return found


def load_working_image(path: Path, size: int = WORKING_SIZE) -> torch.Tensor:
    """(3, size, size) uint8: orientation applied, stretched to the working resolution."""
    with Image.open(path) as image:
        rgb = ImageOps.exif_transpose(image).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)


class PreloadedImages(torch.utils.data.Dataset):
    """All images decoded once at the working resolution (1,000 images = 200 MB as uint8)."""

    def __init__(self, paths: list[Path], size: int = WORKING_SIZE) -> None:
        if not paths:
            raise ValueError("no training images found")
        self.paths = paths
        self.images = torch.stack([load_working_image(p, size) for p in paths])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def infinite_batches(dataset: PreloadedImages, batch_size: int, generator: torch.Generator,
                     crop: int = 0) -> Iterator[torch.Tensor]:
    """Endless (B, 3, C, C) float batches in [0, 1]: random ``crop`` (0: whole image) and horizontal flips.

    G and D are fully convolutional, so training on crops of the working-resolution image teaches
    the same watermark at a quarter of the cost (a 128 px crop still holds 2 x 2 pattern tiles).
    """
    while True:
        order = torch.randperm(len(dataset), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            batch = dataset.images[order[start:start + batch_size]].float() / 255.0
            if crop and crop < batch.shape[-1]:
                top, left = (int(v) for v in torch.randint(0, batch.shape[-1] - crop + 1, (2,), generator=generator))
                batch = batch[..., top:top + crop, left:left + crop]
            flip = torch.rand(batch_size, generator=generator) < 0.5
            batch[flip] = batch[flip].flip(-1)
            yield batch
        if len(order) < batch_size:
            raise ValueError(f"need at least {batch_size} images, have {len(order)}")
