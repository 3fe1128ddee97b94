"""Does a personalized model reproduce the watermark *in place*? The matched filter on S vs S_w.

    python -m training.miniature.matched_filter_check runs/miniature_v10 dreambooth [lora ...]

Gives the miniature's watermark detector a matched filter with G's textures (runs since the miniature
exports with key signs have one; the earlier runs' plain G adds every texture with sign +1), and
reports the AUC of S_w vs S on a method's held-out synthesized images for two scores: the linear
correlation with the key's switched-on textures, and ``models.matched_agreement``. No training: a
high AUC means the synthesized images carry the watermark at the position it had in the training
images, which only a model that can place texture by position (3x3 convolutions; SD's UNet has no
positional encoding) can do.

It also reports what the app's scanner would read from the Phase 1 detector and from the method's
Phase 2 detector: their CNN bit agreement alone, and combined with the matched filter as
``WatermarkDetector.agreement`` combines them (weight ``MATCHED_WEIGHT``; one view).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gwm_desktop.core.keys import message_from_key, texture_signs
from gwm_desktop.core.models import MATCHED_WEIGHT
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
    message = message_from_key((run / "subject.key").read_bytes(), bundle.n_bits)
    on = message > 0
    signs = texture_signs(message) if bundle.generator.signed else torch.ones_like(message)
    synth = run / "phase2" / "synth" / method
    size = detector.working_size
    with torch.no_grad():
        images = {name: load_folder(synth / name / "heldout", size) for name in ("clean", variant)}
        # Times the key's signs, so that every switched-on texture should correlate positively.
        matched = {name: detector.coherent(x) * signs for name, x in images.items()}

    def linear(c: torch.Tensor) -> torch.Tensor:
        return c[:, on].sum(-1)

    def agreement(c: torch.Tensor) -> torch.Tensor:
        present = torch.tanh(c[:, on] / 2).mean(-1)
        stray = torch.relu(torch.tanh((c[:, ~on].abs() - 2) / 2)).mean(-1)
        return present - stray

    def separation(score: dict[str, torch.Tensor]) -> float:
        return auc(score["clean"].numpy(), score[variant].numpy())

    result = {"linear": separation({name: linear(c) for name, c in matched.items()}),
              "agreement": separation({name: agreement(c) for name, c in matched.items()}),
              "n": sum(len(x) for x in images.values())}
    detectors = {"phase1": run / WATERMARK_MODEL,
                 "phase2": run / "phase2" / ("detectors" if variant == "marked" else "detectors_wf0.25") / method}
    for label, folder in detectors.items():
        if not (folder / "manifest.json").exists():
            continue
        cnn_detector = load_model(folder).detector
        with torch.no_grad():
            cnn = {name: cnn_detector.agreement(cnn_detector(x), message.view(1, -1)) for name, x in images.items()}
        result[f"{label}_cnn"] = separation(cnn)
        result[f"{label}_combined"] = separation(
            {name: (1 - MATCHED_WEIGHT) * cnn[name] + MATCHED_WEIGHT * agreement(matched[name]) for name in cnn})
    return result


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
                line = (f"{method:18} {variant:14} matched-filter AUC: linear {result['linear']:.3f}, "
                        f"agreement {result['agreement']:.3f}")
                for label in ("phase1", "phase2"):
                    if f"{label}_cnn" in result:
                        line += (f"; {label} D: CNN {result[f'{label}_cnn']:.3f}, "
                                 f"with matched filter {result[f'{label}_combined']:.3f}")
                print(line + f" (n = {result['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
