"""Loading text-to-image pipelines: the base model (HF id, diffusers folder, single file) and personalizations.

Also the precision policy shared by training and sampling: half precision only on CUDA (bf16 where the
GPU supports it, else fp16), fp32 on Apple MPS and CPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

MANIFEST = "personalization.json"
LORA_FILE = "pytorch_lora_weights.safetensors"
EMBEDS_FILE = "learned_embeds.safetensors"


# -- precision --------------------------------------------------------------------------------------
def choose_mixed_precision(choice: str, device: torch.device) -> str:
    """'auto' -> bf16 (or fp16) on CUDA, 'no' elsewhere; half precision is refused off CUDA (MPS-safe)."""
    if device.type != "cuda":
        return "no"
    if choice == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return choice


def precision_dtype(mixed_precision: str) -> torch.dtype:
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision, torch.float32)


def inference_dtype(device: torch.device | str, mixed_precision: str = "auto") -> torch.dtype:
    """Sampling dtype: half precision on CUDA (bf16 where asked), fp32 on MPS and CPU."""
    return precision_dtype(choose_mixed_precision(mixed_precision, torch.device(device)))


def _dtype_argument() -> str:
    """diffusers renamed ``torch_dtype`` to ``dtype`` (0.36+); use whichever this version expects."""
    try:
        from diffusers.utils import deprecation_utils

        return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"
    except ImportError:
        return "torch_dtype"


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def load_base_pipeline(base: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                       config: str | None = None) -> Any:
    """A StableDiffusionPipeline from a Hugging Face id, a local diffusers folder or one ``.safetensors``/``.ckpt``.

    A folder loads with ``local_files_only``; an id goes through the Hugging Face cache and downloads only
    when the hub is reachable and ``HF_HUB_OFFLINE`` is unset (the user asked for that model). A single
    file needs the pipeline's config: ``config`` (a diffusers folder or id) or diffusers' default fetch.
    The safety checker is not loaded (Phase 2 images are the user's own, never shown to others).
    """
    from diffusers import StableDiffusionPipeline

    common: dict[str, Any] = {_dtype_argument(): dtype, "safety_checker": None, "requires_safety_checker": False}
    path = Path(base)
    if path.is_file():
        if path.suffix.lower() not in (".safetensors", ".ckpt"):
            raise ValueError(f"{path}: a single-file model must be .safetensors or .ckpt")
        kwargs: dict[str, Any] = {"local_files_only": _hub_offline()}
        if config:
            kwargs["config"] = config
        pipeline = StableDiffusionPipeline.from_single_file(str(path), **kwargs, **common)
    elif path.is_dir():
        if not (path / "model_index.json").exists():
            raise FileNotFoundError(f"{path} is not a diffusers model folder (no model_index.json)")
        pipeline = StableDiffusionPipeline.from_pretrained(str(path), local_files_only=True, **common)
    else:
        if str(base).startswith((".", "/", "~")) or str(base).count("/") != 1:
            raise FileNotFoundError(f"no model at {base} (give a Hugging Face id like 'org/name', a diffusers "
                                    "folder or a .safetensors file)")
        pipeline = StableDiffusionPipeline.from_pretrained(str(base), local_files_only=_hub_offline(), **common)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


# -- personalizations -----------------------------------------------------------------------------------
def read_personalization(out_dir: Path) -> dict[str, Any]:
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{out_dir} holds no finished personalization (no {MANIFEST})")
    return json.loads(path.read_text(encoding="utf-8"))


def is_personalized(out_dir: Path) -> bool:
    return (Path(out_dir) / MANIFEST).exists()


def load_unet_lora(unet: Any, path: Path) -> None:
    """Apply a diffusers-format UNet LoRA file (``unet.<module>.lora_A/B.weight``) to ``unet`` with peft.

    Why not ``pipeline.load_lora_weights``: with adapters on attention *and* feed-forward / proj layers
    (``lora_targets="transformer"``) diffusers 0.42 saves two naming schemes in one file, and its
    loader then silently dropped the attention adapters (tests/training/test_phase2_personalize.py reloads such an adapter pixel for pixel).
    The rank is read from the weights; alpha = rank, as the trainer saves (scale 1).
    """
    from peft import LoraConfig
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    # diffusers' converter names attention adapters lora.down/lora.up and leaves the others lora_A/lora_B.
    state = {key[len("unet."):].replace(".lora.down.", ".lora_A.").replace(".lora.up.", ".lora_B."): value
             for key, value in load_file(str(path)).items() if key.startswith("unet.")}
    modules = sorted({key.split(".lora_")[0] for key in state})
    ranks = {key.split(".lora_")[0]: value.shape[0] for key, value in state.items() if ".lora_A." in key}
    if not modules:
        raise ValueError(f"{path} holds no UNet LoRA weights")
    rank = max(ranks.values())
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=modules,
                                rank_pattern={m: r for m, r in ranks.items() if r != rank},
                                alpha_pattern={m: r for m, r in ranks.items() if r != rank}))
    result = set_peft_model_state_dict(unet, state)
    unmatched = [key for key in getattr(result, "unexpected_keys", []) if "lora" in key]
    if unmatched:
        raise ValueError(f"{path}: {len(unmatched)} LoRA weights matched no layer, e.g. {unmatched[0]}")


def load_personalized(base: str | Path | None, out_dir: Path, config: Any = None,
                      device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> Any:
    """The base pipeline with a personalization applied (DreamBooth UNet, LoRA adapter or TI embedding).

    base: None uses the base recorded in the output folder. config: only ``mixed_precision`` is read (for
    the sampling dtype); the method and token come from the folder's manifest.
    """
    out_dir = Path(out_dir)
    manifest = read_personalization(out_dir)
    device = torch.device(device) if not isinstance(device, torch.device) else device
    dtype = dtype or inference_dtype(device, config.mixed_precision if config else "auto")
    pipeline = load_base_pipeline(base if base is not None else manifest["base"], "cpu", dtype)
    method = manifest["method"]
    if config is not None and config.method != method:
        raise ValueError(f"{out_dir} holds a {method} personalization, not {config.method}")
    if method == "dreambooth":
        from diffusers import UNet2DConditionModel

        pipeline.unet = UNet2DConditionModel.from_pretrained(str(out_dir / "unet"), **{_dtype_argument(): dtype})
    elif method == "lora":
        load_unet_lora(pipeline.unet, out_dir / LORA_FILE)
    else:
        from safetensors.torch import load_file

        embeds = load_file(str(out_dir / EMBEDS_FILE))
        token, vector = next(iter(embeds.items()))
        add_token_embedding(pipeline, token, vector)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


def add_token_embedding(pipeline: Any, token: str, vector: torch.Tensor) -> int:
    """Teach ``pipeline``'s tokenizer ``token`` and set its embedding row to ``vector`` (hidden,); returns its id."""
    pipeline.tokenizer.add_tokens(token)
    token_id = pipeline.tokenizer.convert_tokens_to_ids(token)
    encoder = pipeline.text_encoder
    if encoder.get_input_embeddings().weight.shape[0] < len(pipeline.tokenizer):
        encoder.resize_token_embeddings(len(pipeline.tokenizer), mean_resizing=False)
    with torch.no_grad():
        weight = encoder.get_input_embeddings().weight
        weight[token_id] = vector.to(weight.device, weight.dtype)
    return token_id
