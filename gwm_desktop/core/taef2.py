"""TAEF2: the tiny autoencoder distilled from the FLUX.2 VAE, a real diffusion model's latent space.

A personalized model never sees pixels, only its autoencoder's latents, so it can reproduce only what
survives encode -> decode. This module rebuilds the network from its state dict's layout (the
``madebyollin/taesd`` FLUX.2 variant, MIT): 8x downsampling, 32 latent channels, images in [0, 1].
It is differentiable, so Phase 1 can put the round trip in its distortion layer as it is.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from torch import nn

LATENT_CHANNELS = 32
DOWNSAMPLE = 8
WIDTH = 64
MANIFEST = "manifest.json"


def _conv(c_in: int, c_out: int, **kwargs: object) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    """Soft clamp of the latents to (-3, 3), as the decoder was trained with."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z / 3) * 3


class Block(nn.Module):
    """conv-ReLU-conv-ReLU-conv plus identity, then ReLU; ``pooled`` adds a 1x1 bottleneck branch first."""

    def __init__(self, width: int = WIDTH, pooled: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(width, width), nn.ReLU(), _conv(width, width), nn.ReLU(),
                                  _conv(width, width))
        self.pool = nn.Sequential(nn.Conv2d(width, 4 * width, 1, bias=False), nn.GroupNorm(4, 4 * width),
                                  nn.ReLU(), nn.Conv2d(4 * width, width, 1, bias=False)) if pooled else None
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


def encoder() -> nn.Sequential:
    """(B, 3, H, W) in [0, 1] -> (B, 32, H/8, W/8)."""
    layers: list[nn.Module] = [_conv(3, WIDTH), Block()]
    for stage in range(3):
        pooled = stage == 2
        layers += [_conv(WIDTH, WIDTH, stride=2, bias=False), *(Block(pooled=pooled) for _ in range(3))]
    layers.append(_conv(WIDTH, LATENT_CHANNELS))
    return nn.Sequential(*layers)


def decoder() -> nn.Sequential:
    """(B, 32, h, w) -> (B, 3, 8h, 8w), roughly in [0, 1] (clamp it)."""
    layers: list[nn.Module] = [Clamp(), _conv(LATENT_CHANNELS, WIDTH), nn.ReLU()]
    for stage in range(3):
        pooled = stage == 0
        layers += [*(Block(pooled=pooled) for _ in range(3)), nn.Upsample(scale_factor=2),
                   _conv(WIDTH, WIDTH, bias=False)]
    layers += [Block(), _conv(WIDTH, 3)]
    return nn.Sequential(*layers)


class LatentAutoencoder(nn.Module):
    """Encoder and decoder of TAEF2; ``round_trip`` is what a latent diffusion model's training sees."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = encoder()
        self.decoder = decoder()

    def round_trip(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> the same shape in [0, 1]; H and W are padded to multiples of 8."""
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % DOWNSAMPLE, -width % DOWNSAMPLE
        if pad_h or pad_w:
            x = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        decoded = self.decoder(self.encoder(x))
        return decoded[..., :height, :width].clamp(0, 1)


def default_autoencoder_dir() -> Path:
    from gwm_desktop.resources import resource_path

    return resource_path("taef2")


def load_latent_autoencoder(folder: Path | None = None, device: torch.device | str = "cpu") -> LatentAutoencoder:
    """Build TAEF2 from ``folder`` (default: the shipped ``resources/taef2``); frozen, in eval mode.

    The folder holds ``encoder.safetensors`` + ``decoder.safetensors`` with a ``manifest.json`` whose
    sha256 sums are checked, or the upstream ``taef2_encoder.pth`` + ``taef2_decoder.pth``.
    """
    folder = Path(folder) if folder is not None else default_autoencoder_dir()
    _verify(folder)
    model = LatentAutoencoder()
    for part, module in (("encoder", model.encoder), ("decoder", model.decoder)):
        module.load_state_dict(_read_state(folder, part))
    model.requires_grad_(False)
    return model.to(device).eval()


@functools.lru_cache(maxsize=1)
def shared_autoencoder() -> LatentAutoencoder:
    """The shipped TAEF2 on the CPU, loaded once per process (evaluation's latent round trip)."""
    return load_latent_autoencoder()


def _verify(folder: Path) -> None:
    manifest_file = folder / MANIFEST
    if not manifest_file.exists():
        return
    from gwm_desktop.core.weights import ModelIntegrityError, sha256_file

    files = json.loads(manifest_file.read_text()).get("files") or {}
    if not files:
        raise ModelIntegrityError(f"{manifest_file} lists no files to verify")
    for name, expected in files.items():
        if not (folder / name).exists() or sha256_file(folder / name) != expected:
            raise ModelIntegrityError(f"{folder / name} is missing or does not match its sha256 in {MANIFEST}")


def _read_state(folder: Path, part: str) -> dict[str, torch.Tensor]:
    safetensors_file = folder / f"{part}.safetensors"
    if safetensors_file.exists():
        from safetensors.torch import load_file

        return load_file(str(safetensors_file))
    upstream = folder / f"taef2_{part}.pth"
    if upstream.exists():
        return torch.load(upstream, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"no TAEF2 {part} weights in {folder} ({part}.safetensors or taef2_{part}.pth)")
