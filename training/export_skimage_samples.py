"""Write scikit-image's bundled sample photographs (no download needed) to a folder as PNG.

They add colour photographs, textures and scenes to the portrait corpus for Phase 1::

    python -m training.export_skimage_samples runs/data/skimage
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES = ("astronaut", "brick", "camera", "cat", "chelsea", "coffee", "coins", "colorwheel", "grass",
           "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms", "moon",
           "page", "retina", "rocket", "text", "skin", "motorcycle_left", "motorcycle_right", "lily")


def export(folder: Path) -> list[Path]:
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SAMPLES:
        try:
            array = getattr(skimage.data, name)()
        except Exception as error:  # some samples need a download: skip them offline
            print(f"skip {name}: {type(error).__name__}")
            continue
        array = np.asarray(array)
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        if array.dtype != np.uint8:
            array = (255 * (array.astype(np.float64) - array.min()) / max(1e-9, np.ptp(array))).astype(np.uint8)
        if array.ndim == 3 and array.shape[-1] == 4:
            array = array[..., :3]
        if array.ndim == 3 and array.shape[-1] > 4:
            continue
        path = folder / f"skimage_{name}.png"
        Image.fromarray(array).convert("RGB").save(path)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    written = export(parser.parse_args().folder)
    print(f"wrote {len(written)} images")


if __name__ == "__main__":
    main()
