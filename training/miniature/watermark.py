"""Phase 1 fine-tuning with the miniature's autoencoder round trip among the distortions (SPEC section 2).

Measured here: the 64 px watermark model trained with the standard distortions alone is found on the
subject's X_w with AUC 1.0, but after one encode/decode through the miniature's autoencoder the
Phase 1 detector is at chance (AUC ~0.5), exactly the failure SPEC warns about ("the watermark must
survive a VAE encode/decode round trip ... Phase 1 fine-tuning should put that VAE's round trip among
the training distortions"). This stage does that: it continues Phase 1 from the standard model with
a share of every batch sent through the (frozen, differentiable) autoencoder before the standard
distortion, so G learns a watermark the latent space keeps and D learns how it looks afterwards.
The same code applies to a real Stable Diffusion VAE.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL

from training.distortion_layer import DistortionLayer
from training.miniature.world import WatermarkStageConfig


class AutoencoderRoundTrip(torch.nn.Module):
    """(B, 3, S, S) in [0, 1] -> the same batch with a ``share`` of samples decoded from their latent
    (posterior mean), then every sample through the standard distortion layer. Gradients flow
    through the autoencoder (its weights stay frozen) to the watermark generator.
    """

    def __init__(self, standard: DistortionLayer, vae: AutoencoderKL, share: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        self.standard = standard
        self.vae = vae.eval().requires_grad_(False)
        self.share = share
        self.pick = random.Random(seed + 1)

    # Phase1Trainer sets the curriculum's identity share and checkpoints the RNG on its distortion layer.
    @property
    def p_identity(self) -> float:
        return self.standard.p_identity

    @p_identity.setter
    def p_identity(self, value: float) -> None:
        self.standard.p_identity = value

    @property
    def rng(self) -> random.Random:
        return self.standard.rng

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chosen = [i for i in range(x.shape[0]) if self.pick.random() < self.share]
        if chosen:
            index = torch.tensor(chosen, device=x.device)
            latent = self.vae.encode(x[index] * 2 - 1).latent_dist.mean
            decoded = ((self.vae.decode(latent).sample + 1) / 2).clamp(0, 1)
            x = x.index_copy(0, index, decoded)
        return self.standard(x)


def ensure_autoencoder_aware_watermark(out: Path, data: list[Path], resolution: int, base_model: Path, vae_dir: Path,
                                       stage: WatermarkStageConfig, log: Any = print) -> Path:
    """Fine-tune ``base_model`` (a Phase 1 model folder) with the round trip; returns the new model folder."""
    from training.phase1 import Phase1Trainer
    from training.phase1_config import Phase1Config

    folder = out / f"{Path(base_model).parent.name}{stage.autoencoder_tag}"   # e.g. watermark64_b16_t64_ae
    if (folder / "model" / "manifest.json").exists():
        return folder / "model"
    config = Phase1Config(data=[str(d) for d in data], out=str(folder), steps=stage.autoencoder_steps,
                          warmup_steps=0, batch_size=stage.autoencoder_batch_size, working_size=resolution,
                          checkpoint_every=50, resume="latest", init_from=str(base_model), device="cpu",
                          max_images=stage.max_images)
    share = stage.autoencoder_share
    trainer = Phase1Trainer(config)
    vae = AutoencoderKL.from_pretrained(str(vae_dir))
    trainer.distort = AutoencoderRoundTrip(trainer.distort, vae, share, config.seed)
    for progress in trainer.run():
        if progress.done % 25 == 0 or progress.done == progress.total:
            m = progress.payload
            log(f"watermark model + autoencoder {progress.message}: lpips {m['lpips']:.3f} bits {m['bit_acc']:.2f} "
                f"own {m['agree_marked']:.2f} other {m['agree_other']:.2f}")
    trainer.export(folder / "model", f"training.miniature: Phase 1 fine-tuned from {base_model} with the "
                   f"autoencoder {vae_dir} round trip on a {share:g} share of each batch")
    return folder / "model"
