"""LPIPS (AlexNet, v0.1) with the genuine ImageNet backbone, loaded offline.

The measure is the one of SPEC section 3: both images converted to RGB and resized with Pillow's
LANCZOS filter so their shorter side is 256 px, inputs scaled to [-1, 1].
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gwm_desktop.resources import resource_path

ALEXNET_CONV_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5")
LPIPS_SHORT_SIDE = 256


def default_alexnet_weights_path() -> Path:
    return resource_path("lpips", "alexnet_features.safetensors")


def build_lpips(device: torch.device | str = "cpu", weights: Path | None = None) -> torch.nn.Module:
    """The ``lpips`` package's model with our converted backbone; frozen, in eval mode.

    ``pnet_rand=True`` stops torchvision from downloading; we then load the genuine convolutions.
    The v0.1 linear layers ship inside the ``lpips`` package itself.
    """
    import lpips  # heavy (imports torchvision); keep it off the import path of light modules
    from safetensors.torch import load_file

    weights = weights or default_alexnet_weights_path()
    if not weights.exists():
        raise FileNotFoundError(f"LPIPS AlexNet weights missing: {weights} (see resources/lpips/PROVENANCE.md)")
    with warnings.catch_warnings():  # torchvision's deprecation notice about `pretrained`, not ours to fix
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    tensors = load_file(str(weights))
    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != len(ALEXNET_CONV_NAMES):
        raise RuntimeError(f"unexpected LPIPS AlexNet layout: {len(convs)} convolutions")
    with torch.no_grad():
        for conv, name in zip(convs, ALEXNET_CONV_NAMES, strict=True):
            conv.weight.copy_(tensors[f"{name}.weight"])
            conv.bias.copy_(tensors[f"{name}.bias"])
    model.eval().requires_grad_(False)
    return model.to(device)


@lru_cache(maxsize=4)
def cached_lpips(device: str = "cpu") -> torch.nn.Module:
    return build_lpips(device)


def resize_for_lpips(image: Image.Image) -> Image.Image:
    """RGB, shorter side 256 px, LANCZOS (SPEC section 3)."""
    image = image.convert("RGB")
    width, height = image.size
    scale = LPIPS_SHORT_SIDE / min(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS) if size != image.size else image


def pil_to_lpips_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> (1, 3, H, W) float in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


def lpips_distance(a: Image.Image, b: Image.Image, model: torch.nn.Module | None = None) -> float:
    """LPIPS between two PIL images by the SPEC protocol (resize to shorter side 256, LANCZOS)."""
    model = model or cached_lpips("cpu")
    ta = pil_to_lpips_tensor(resize_for_lpips(a))
    tb = pil_to_lpips_tensor(resize_for_lpips(b))
    if ta.shape != tb.shape:
        raise ValueError(f"LPIPS needs images of the same aspect: {tuple(ta.shape)} vs {tuple(tb.shape)}")
    device = next(model.parameters()).device
    with torch.no_grad():
        return float(model(ta.to(device), tb.to(device)).item())


class LpipsToReference:
    """LPIPS of many candidates against one fixed reference, with the reference's features cached.

    Calibration measures the same original against several watermark strengths: computing the
    original's AlexNet features once halves the cost of every later measurement. Same arithmetic
    as ``lpips.LPIPS.forward`` (v0.1, scaling layer, unit-normalised features, linear layers,
    spatial mean).
    """

    def __init__(self, model: torch.nn.Module, reference: torch.Tensor) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.reference_features = self._features(reference.to(self.device))

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        import lpips

        outputs = self.model.net.forward(self.model.scaling_layer(x))
        return [lpips.normalize_tensor(out) for out in outputs]

    @torch.no_grad()
    def __call__(self, candidates: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) in [-1, 1], same size as the reference -> (B,) LPIPS."""
        features = self._features(candidates.to(self.device))
        total = torch.zeros(candidates.shape[0], device=self.device)
        for lin, ref, feat in zip(self.model.lins, self.reference_features, features, strict=True):
            total += lin((ref - feat) ** 2).mean(dim=(1, 2, 3))
        return total.cpu()
