"""The miniature's prior: a latent DDPM (``UNet2DConditionModel``) with cross-attention on the text
encoder, pretrained on the broad corpus's latents, then saved as a standard ``StableDiffusionPipeline``.

Pretraining trains the UNet and the text encoder together (Stable Diffusion inherits CLIP's; we have
none to inherit, so the words learn their meaning here). Afterwards the text encoder is frozen like
SD's during personalization. Noise schedule: SD's (1,000 steps, scaled-linear betas 0.00085..0.012,
epsilon prediction); sampling: DDIM. Captions are dropped 10% of the time so classifier-free guidance
works, as in SD's training.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextModel, CLIPTokenizer

from gwm_desktop.core.jobs import CancelToken, Progress
from training.checkpoints import latest_checkpoint, save_checkpoint
from training.miniature.data import CorpusItem, caption


@dataclass
class PriorConfig:
    steps: int = 6000
    batch_size: int = 16
    lr: float = 5e-4
    text_lr: float = 5e-4
    warmup: int = 100
    caption_dropout: float = 0.1
    channels: tuple[int, ...] = (32, 64, 64)
    cross_attention_dim: int = 64     # = text encoder hidden size
    seed: int = 0
    checkpoint_every: int = 250


def build_unet(config: PriorConfig, latent_size: int, latent_channels: int = 4) -> UNet2DConditionModel:
    """(B, 4, h, w) noisy latents, (B,) timesteps, (B, L, 64) text states -> (B, 4, h, w) predicted noise."""
    levels = len(config.channels)
    down = ("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",)
    up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1)
    return UNet2DConditionModel(sample_size=latent_size, in_channels=latent_channels, out_channels=latent_channels,
                                block_out_channels=tuple(config.channels), down_block_types=down, up_block_types=up,
                                layers_per_block=1, cross_attention_dim=config.cross_attention_dim,
                                attention_head_dim=4, norm_num_groups=16)


def sd_noise_scheduler() -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", prediction_type="epsilon", clip_sample=False)


@torch.no_grad()
def encode_corpus(vae: AutoencoderKL, images: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, S, S) uint8 -> posterior (mean, std), each (N, 4, S/4, S/4), unscaled."""
    means, stds = [], []
    for start in range(0, images.shape[0], batch):
        dist = vae.encode(images[start:start + batch].float() / 127.5 - 1).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def train_prior(items: list[CorpusItem], vae: AutoencoderKL, tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel,
                out_dir: Path, config: PriorConfig, cancel: CancelToken | None = None) -> Iterator[Progress]:
    """Pretrain UNet + text encoder on the corpus; resumes from ``out_dir/checkpoints``.

    Returns (via the last Progress payload) the trained UNet; the caller assembles the pipeline.
    """
    cancel = cancel or CancelToken()
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    text_rng = random.Random(config.seed)
    from training.miniature.data import stack_images

    images = stack_images(items)
    flipped = images.flip(-1)
    mean, std = encode_corpus(vae, torch.cat([images, flipped]))
    scale = vae.config.scaling_factor
    latent_size = mean.shape[-1]
    unet = build_unet(config, latent_size, mean.shape[1]).train()
    text_encoder.train().requires_grad_(True)
    scheduler = sd_noise_scheduler()
    opt = torch.optim.AdamW([{"params": unet.parameters(), "lr": config.lr},
                             {"params": text_encoder.parameters(), "lr": config.text_lr}], weight_decay=1e-2)
    step = 0
    found = latest_checkpoint(out_dir / "checkpoints")
    if found is not None:
        state = torch.load(found, weights_only=False)
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        opt.load_state_dict(state["opt"])
        rng.set_state(state["rng"])
        text_rng.setstate(state["text_rng"])
        step = state["step"]
    started = time.monotonic()
    n_items = len(items)
    with open(out_dir / "log.jsonl", "a", encoding="utf-8") as log:
        while step < config.steps:
            cancel.raise_if_cancelled()
            warm = min(1.0, (step + 1) / config.warmup)
            decay = 0.5 * (1 + math.cos(math.pi * step / config.steps))
            for group, base in zip(opt.param_groups, (config.lr, config.text_lr), strict=True):
                group["lr"] = base * warm * (0.1 + 0.9 * decay)
            index = torch.randint(0, mean.shape[0], (config.batch_size,), generator=rng)
            latents = (mean[index] + std[index] * torch.randn(mean[index].shape, generator=rng)) * scale
            texts = ["" if text_rng.random() < config.caption_dropout else caption(items[int(i) % n_items], text_rng)
                     for i in index]
            ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                            return_tensors="pt").input_ids
            noise = torch.randn(latents.shape, generator=rng)
            timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (config.batch_size,), generator=rng)
            noisy = scheduler.add_noise(latents, noise, timesteps)
            context = text_encoder(ids)[0]
            loss = F.mse_loss(unet(noisy, timesteps, context).sample, noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(unet.parameters()) + list(text_encoder.parameters()), 1.0)
            opt.step()
            step += 1
            metrics = {"step": step, "loss": loss.item(), "elapsed_s": round(time.monotonic() - started, 1)}
            log.write(json.dumps(metrics) + "\n")
            log.flush()
            if step % config.checkpoint_every == 0 or step == config.steps:
                save_checkpoint({"step": step, "unet": unet.state_dict(), "text_encoder": text_encoder.state_dict(),
                                 "opt": opt.state_dict(), "rng": rng.get_state(), "text_rng": text_rng.getstate()},
                                out_dir / "checkpoints", step, keep=2)
            yield Progress(step, config.steps, f"prior step {step}/{config.steps}", metrics)
    unet.eval().requires_grad_(False)
    text_encoder.eval().requires_grad_(False)
    yield Progress(config.steps, config.steps, "prior trained", {"unet": unet, "config": asdict(config)})


def assemble_pipeline(vae: AutoencoderKL, text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer,
                      unet: UNet2DConditionModel) -> StableDiffusionPipeline:
    """A standard SD pipeline (no safety checker; DDIM sampling with SD's training schedule)."""
    sampler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                            beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                            steps_offset=1, prediction_type="epsilon")
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=sampler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
