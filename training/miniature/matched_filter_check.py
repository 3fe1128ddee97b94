"""Does a personalized model reproduce the watermark *in place*? The matched filter on S vs S_w.

    python -m training.miniature.matched_filter_check runs/miniature_v10 dreambooth [lora ...]

Gives the miniature's (plain, unsigned) watermark detector a matched filter with G's textures, and
reports the AUC of S_w vs S on a method's held-out synthesized images for two scores: the linear
correlation with the key's switched-on textures, and ``models.matched_agreement``'s form with every
sign +1 (the miniature's G adds no signs). No training: a high AUC means the synthesized images carry
the watermark at the position it had in the training images, which only a model that can place
texture by position (3x3 convolutions; SD's UNet has no positional encoding) can do.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.weights import load_model
from training.matched_filter import with_matched_filter
from training.metrics import auc

WATERMARK_MODEL = "watermark64_b16_t64_ae/model"


def load_folder(folder: Path, size: int) -> torch.Tensor:
    arrays = [np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
              for f in sorted(folder.glob("*.png"))]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def scores(run: Path, method: str, variant: str = "marked") -> dict[str, float]:
    bundle = load_model(run / WATERMARK_MODEL)
    _, detector = with_matched_filter(bundle.generator, bundle.detector)
    on = message_from_key((run / "subject.key").read_bytes(), bundle.n_bits) > 0
    synth = run / "phase2" / "synth" / method
    size = detector.working_size
    with torch.no_grad():
        clean = detector.coherent(load_folder(synth / "clean" / "heldout", size))
        marked = detector.coherent(load_folder(synth / variant / "heldout", size))

    def linear(c: torch.Tensor) -> np.ndarray:
        return (c[:, on].sum(-1) - c[:, ~on].sum(-1)).numpy()

    def agreement(c: torch.Tensor) -> np.ndarray:
        present = torch.tanh(c[:, on] / 2).mean(-1)
        stray = torch.relu(torch.tanh((c[:, ~on].abs() - 2) / 2)).mean(-1)
        return (present - stray).numpy()

    return {"linear": auc(linear(clean), linear(marked)), "agreement": auc(agreement(clean), agreement(marked)),
            "n": len(clean) + len(marked)}


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) < 2:
        print(__doc__)
        return 2
    run = Path(args[0])
    torch.set_num_threads(1)
    for method in args[1:]:
        for variant in ("marked", "marked_wf0.25"):
            if (run / "phase2" / "synth" / method / variant / "heldout").exists():
                result = scores(run, method, variant)
                print(f"{method:18} {variant:14} matched-filter AUC: linear {result['linear']:.3f}, "
                      f"agreement {result['agreement']:.3f} (n = {result['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
