"""Tiny Stable-Diffusion-shaped pipelines built from configs: the Phase 2 tests' stand-in for a hub model.

Everything is created in code (no files, no network): a UNet2DConditionModel with 32/64 channels, an
AutoencoderKL with 4x spatial downsampling, a 2-layer CLIP text encoder (hidden size 32) and a
character-level CLIP tokenizer. ``save_tiny_pipeline`` writes it as a local diffusers folder, which
``training.phase2.personalize.load_base_pipeline`` loads the same way it loads a Hugging Face id.
"""

from __future__ import annotations

from pathlib import Path

import torch

# test_phase2_tab.py still imports the helper from here; every other module gets it from tests/conftest.py.
from tests.fixtures.torch_threads import single_thread_torch as single_thread_torch

PLACEHOLDER = "<sks>"


def tiny_tokenizer(with_placeholder: bool = False):
    """Character-level CLIPTokenizer (every printable ASCII char, with and without ``</w>``) plus a few words.

    Merges spell out the few whole words our prompts use, so "painting" is one token, as it is in CLIP.
    """
    from transformers import CLIPTokenizer

    chars = [chr(c) for c in range(33, 127)]
    vocab: dict[str, int] = {}
    for suffix in ("", "</w>"):
        for char in chars:
            vocab[char + suffix] = len(vocab)
    merges: list[tuple[str, str]] = []
    for word in ("painting", "style", "portrait", "photo"):
        # Left-to-right merges: p+a -> pa, pa+i -> pai, ..., last one with the end-of-word marker.
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            merged = current + piece
            if (current, piece) not in merges:
                merges.append((current, piece))
            vocab.setdefault(merged, len(vocab))
            current = merged
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    if with_placeholder:
        tokenizer.add_tokens(PLACEHOLDER)
    return tokenizer


def build_tiny_pipeline(seed: int = 0, with_placeholder: bool = False):
    """(StableDiffusionPipeline) with random weights from ``seed``; runs 2 steps at 32 px in ~0.05 s."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, norm_num_groups=32)
    vae = AutoencoderKL(
        block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=32)
    tokenizer = tiny_tokenizer(with_placeholder)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, hidden_size=32,
        intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=2,
        pad_token_id=tokenizer.pad_token_id or 0, vocab_size=len(tokenizer), max_position_embeddings=77))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipeline = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def save_tiny_pipeline(folder: Path, seed: int = 0, with_placeholder: bool = False) -> Path:
    """Write a tiny pipeline as a local diffusers folder (~6 MB) and return it."""
    build_tiny_pipeline(seed, with_placeholder).save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def write_subject_images(folder: Path, n: int = 4, size: int = 48, seed: int = 0) -> list[Path]:
    """``n`` small PNG "paintings" (smooth colour fields with strokes): a subject set X for the tests."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    yy, xx = np.mgrid[0:size, 0:size] / size
    for index in range(n):
        base = rng.uniform(0.2, 0.8, 3)
        image = np.stack([base[c] + 0.2 * np.sin(2 * np.pi * (rng.uniform(1, 3) * xx + rng.uniform(0, 2) * yy))
                          for c in range(3)], axis=-1)
        image += rng.normal(0, 0.03, image.shape)
        path = folder / f"art_{index:02d}.png"
        Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def tiny_watermark_model(folder: Path, seed: int = 0) -> Path:
    """An untrained 64 px watermark model folder (G tile 32, D spectrum crop 24, 32 bits) with a calibration bank."""
    from gwm_desktop.core.generator import DEFAULT_BITS, WatermarkGenerator
    from gwm_desktop.core.models import WatermarkDetector
    from gwm_desktop.core.weights import save_model

    torch.manual_seed(seed)
    save_model(Path(folder), WatermarkGenerator(working_size=64, tile=32), WatermarkDetector(working_size=64, spectrum_crop=24),
               manifest_extra={"training": {"phase": 0, "note": "untrained test model"}},
               calibration={"clean_bits": torch.randn(64, DEFAULT_BITS) * 0.1})
    return Path(folder)
