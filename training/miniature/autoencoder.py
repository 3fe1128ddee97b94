"""The miniature's latent autoencoder: a small ``diffusers.AutoencoderKL`` with 4x spatial downsampling.

64 x 64 x 3 images <-> 16 x 16 x 4 latents (Stable Diffusion: 8x, 512 x 512 x 3 <-> 64 x 64 x 4).
Trained by us on the broad corpus only (never on the subject), with SD's recipe cut down: L1 +
LPIPS (AlexNet) + a tiny KL term; no adversarial loss. The watermark has to survive this round trip
and a prior that only ever sees latents, which is what made the pixel-space prototype too easy.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from gwm_desktop.core.jobs import CancelToken, Progress
from training.checkpoints import latest_checkpoint, save_checkpoint


@dataclass
class AutoencoderConfig:
    steps: int = 750          # what the measured worlds (runs/miniature*) used (docs/history.md)
    batch_size: int = 16
    lr: float = 1e-3
    lpips_weight: float = 0.1
    kl_weight: float = 1e-6
    channels: tuple[int, ...] = (32, 64, 64)   # 3 blocks: 2 downsamplings = 4x
    latent_channels: int = 4
    resolution: int = 64
    crop: int = 32            # train on random crops (fully convolutional): 4x cheaper per step on a CPU
    seed: int = 0
    checkpoint_every: int = 250


def build_autoencoder(config: AutoencoderConfig) -> AutoencoderKL:
    blocks = len(config.channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * blocks,
                         up_block_types=("UpDecoderBlock2D",) * blocks, block_out_channels=tuple(config.channels),
                         layers_per_block=1, latent_channels=config.latent_channels, norm_num_groups=16,
                         sample_size=config.resolution)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for (B, 3, H, W) images in [0, 1]."""
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)


@torch.no_grad()
def round_trip(vae: AutoencoderKL, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> its reconstruction through the latent (posterior mode), in [0, 1]."""
    out = []
    for start in range(0, x.shape[0], batch):
        chunk = x[start:start + batch] * 2 - 1
        latent = vae.encode(chunk).latent_dist.mode()
        out.append(((vae.decode(latent).sample + 1) / 2).clamp(0, 1))
    return torch.cat(out)


def train_autoencoder(images: torch.Tensor, held_out: torch.Tensor, out_dir: Path, config: AutoencoderConfig,
                      lpips: torch.nn.Module, cancel: CancelToken | None = None) -> Iterator[Progress]:
    """Train on ``images`` (N, 3, S, S) uint8; resumes from ``out_dir/checkpoints``; saves ``out_dir/model``.

    The final Progress payload holds the held-out PSNR and the latent scaling factor (1 / latent std,
    written into the model config as Stable Diffusion's ``scaling_factor``).
    """
    cancel = cancel or CancelToken()
    torch.manual_seed(config.seed)
    vae = build_autoencoder(config).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=config.lr, weight_decay=0.0)
    rng = torch.Generator().manual_seed(config.seed)
    step = 0
    checkpoints = out_dir / "checkpoints"
    found = latest_checkpoint(checkpoints)
    if found is not None:
        state = torch.load(found, weights_only=False)
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        rng.set_state(state["rng"])
        step = state["step"]
    started = time.monotonic()
    with open(out_dir / "log.jsonl", "a", encoding="utf-8") as log:
        while step < config.steps:
            cancel.raise_if_cancelled()
            lr = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
            for group in opt.param_groups:
                group["lr"] = lr
            index = torch.randint(0, images.shape[0], (config.batch_size,), generator=rng)
            x = images[index].float() / 255.0
            flip = torch.rand(config.batch_size, generator=rng) < 0.5
            x[flip] = x[flip].flip(-1)
            if 0 < config.crop < x.shape[-1]:
                top, left = (int(v) for v in torch.randint(0, x.shape[-1] - config.crop + 1, (2,), generator=rng))
                x = x[..., top:top + config.crop, left:left + config.crop]
            posterior = vae.encode(x * 2 - 1).latent_dist
            recon = vae.decode(posterior.sample(generator=rng)).sample
            loss_rec = F.l1_loss(recon, x * 2 - 1)
            loss_lpips = lpips(recon.clamp(-1, 1), x * 2 - 1).mean()
            loss_kl = posterior.kl().mean()
            loss = loss_rec + config.lpips_weight * loss_lpips + config.kl_weight * loss_kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            metrics = {"step": step, "l1": loss_rec.item(), "lpips": loss_lpips.item(), "kl": loss_kl.item(),
                       "elapsed_s": round(time.monotonic() - started, 1)}
            log.write(json.dumps(metrics) + "\n")
            log.flush()
            if step % config.checkpoint_every == 0 or step == config.steps:
                save_checkpoint({"step": step, "model": vae.state_dict(), "opt": opt.state_dict(),
                                 "rng": rng.get_state()}, checkpoints, step, keep=2)
            yield Progress(step, config.steps, f"autoencoder step {step}/{config.steps}", metrics)
    vae.eval()
    recon = round_trip(vae, held_out.float() / 255.0)
    held_psnr = float(psnr(recon, held_out.float() / 255.0).mean())
    with torch.no_grad():
        sample = images[torch.randperm(images.shape[0], generator=rng)[:256]].float() / 127.5 - 1
        latents = torch.cat([vae.encode(sample[i:i + 64]).latent_dist.mode() for i in range(0, len(sample), 64)])
    scaling = float(1.0 / latents.std())
    vae.register_to_config(scaling_factor=scaling)
    vae.save_pretrained(out_dir / "model")
    summary = {"held_out_psnr_db": round(held_psnr, 2), "held_out_images": int(held_out.shape[0]),
               "scaling_factor": scaling, "config": asdict(config), "train_images": int(images.shape[0])}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    yield Progress(config.steps, config.steps, f"autoencoder: held-out PSNR {held_psnr:.2f} dB", summary)
