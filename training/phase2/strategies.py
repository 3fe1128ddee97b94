"""What differs between the personalization methods, one class each, behind one ``MethodStrategy``.

``Personalizer`` runs the loop every method shares (diffusers' training examples: denoising loss on
VAE latents, accelerate, checkpoints); a strategy decides which weights train, how the text
conditioning is made, what a checkpoint holds and which files the result is saved as:

* ``DreamBooth``: the whole UNet trains in fp32; text encoder and VAE frozen.
* ``LoRA``: peft adapters on the UNet layers of ``lora_targets``; the base weights never change.
* ``TextualInversion``: only the placeholder token's embedding row trains; every other row is put
  back after each step, bit for bit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Protocol

import torch

from training.phase2.loading import EMBEDS_FILE, LORA_FILE
from training.phase2.personalize_config import PersonalizeConfig
from training.phase2_methods import LORA_TARGET_SETS


class Personalizer(Protocol):
    """What a strategy reads and sets on ``personalize.Personalizer`` (declared here, so this module
    does not import the one that uses it)."""

    config: PersonalizeConfig
    accelerator: Any
    device: torch.device
    weight_dtype: torch.dtype
    tokenizer: Any
    text_encoder: Any
    unet: Any
    model: Any
    prompt_embeds: list[torch.Tensor]
    input_ids: list[torch.Tensor]
    placeholder_id: int
    original_embeddings: torch.Tensor
    keep_rows: torch.Tensor


def place(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Move to ``device``; cast only when the dtype changes (loaded weights are fp32)."""
    module.to(device)
    if dtype != torch.float32:
        module.to(dtype=dtype)


class MethodStrategy(ABC):
    """A UNet-training method (the default behaviour); subclasses override what differs and must say
    what trains (``setup``) and how its weights are saved (``save_weights``)."""

    weight_decay = True            # AdamW weight decay (Textual Inversion trains without)
    encodes_prompts_once = True    # frozen text encoder: each prompt is encoded once, before training

    @abstractmethod
    def setup(self, p: Personalizer) -> list[torch.nn.Parameter]:
        """Place the networks, choose ``p.model`` (what trains) and return the trainable parameters."""

    def hidden_states(self, p: Personalizer, set_index: int, batch: int) -> torch.Tensor:
        return p.prompt_embeds[set_index].expand(batch, -1, -1)

    def predict(self, p: Personalizer, noisy: torch.Tensor, timesteps: torch.Tensor,
                hidden: torch.Tensor) -> torch.Tensor:
        return p.model(noisy, timesteps, hidden).sample

    def after_step(self, p: Personalizer) -> None:  # noqa: B027 - a hook: most methods do nothing here
        """Called after every optimizer step."""

    def trainable_state(self, p: Personalizer, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    def load_trainable_state(self, p: Personalizer, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        model.load_state_dict(state)

    @abstractmethod
    def save_weights(self, p: Personalizer, model: torch.nn.Module, staging: Path) -> list[str]:
        """Write the trained weights into ``staging``; returns the names written."""

    def sampling_parts(self, p: Personalizer, model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(unet, text encoder) of a pipeline sampling from the model as trained so far."""
        return model, p.text_encoder

    @staticmethod
    def _train_unet(p: Personalizer) -> None:
        if p.config.gradient_checkpointing:
            p.unet.enable_gradient_checkpointing()
        p.model = p.unet
        p.model.train()


class DreamBooth(MethodStrategy):
    def setup(self, p: Personalizer) -> list[torch.nn.Parameter]:
        place(p.text_encoder, p.device, p.weight_dtype)
        place(p.unet, p.device, torch.float32)
        p.unet.requires_grad_(True)
        trainable = list(p.unet.parameters())
        self._train_unet(p)
        return trainable

    def save_weights(self, p: Personalizer, model: torch.nn.Module, staging: Path) -> list[str]:
        model.save_pretrained(staging / "unet", safe_serialization=True)
        return ["unet"]


class LoRA(MethodStrategy):
    def setup(self, p: Personalizer) -> list[torch.nn.Parameter]:
        from peft import LoraConfig

        cfg = p.config
        place(p.text_encoder, p.device, p.weight_dtype)
        place(p.unet, p.device, p.weight_dtype)
        with torch.random.fork_rng(devices=[]):  # the adapters' random init follows cfg.seed
            torch.manual_seed(cfg.seed + p.accelerator.process_index)
            p.unet.add_adapter(LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_rank, init_lora_weights="gaussian",
                                          target_modules=LORA_TARGET_SETS[cfg.lora_targets]))
        trainable = [q for q in p.unet.parameters() if q.requires_grad]
        for param in trainable:  # adapters train in fp32 even when the base runs in half precision
            param.data = param.data.float()
        self._train_unet(p)
        return trainable

    def trainable_state(self, p: Personalizer, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        from peft.utils import get_peft_model_state_dict

        return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}

    def load_trainable_state(self, p: Personalizer, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        from peft.utils import set_peft_model_state_dict

        set_peft_model_state_dict(model, state)

    def save_weights(self, p: Personalizer, model: torch.nn.Module, staging: Path) -> list[str]:
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers

        StableDiffusionPipeline.save_lora_weights(
            staging, unet_lora_layers=convert_state_dict_to_diffusers(self.trainable_state(p, model)),
            safe_serialization=True, weight_name=LORA_FILE)
        return [LORA_FILE]


class TextualInversion(MethodStrategy):
    weight_decay = False
    encodes_prompts_once = False

    def setup(self, p: Personalizer) -> list[torch.nn.Parameter]:
        self._add_placeholder(p)
        place(p.unet, p.device, p.weight_dtype)
        place(p.text_encoder, p.device, torch.float32)
        p.model = p.text_encoder
        p.model.train()
        return [p.text_encoder.get_input_embeddings().weight]

    @staticmethod
    def _add_placeholder(p: Personalizer) -> None:
        cfg, tokenizer, encoder = p.config, p.tokenizer, p.text_encoder
        init_ids = tokenizer.encode(cfg.initializer_token, add_special_tokens=False)
        if len(init_ids) != 1:
            raise ValueError(f"initializer token {cfg.initializer_token!r} must be a single token, is {len(init_ids)}")
        tokenizer.add_tokens(cfg.placeholder_token)  # no-op when the tokenizer already knows it
        ids = tokenizer.encode(cfg.placeholder_token, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"placeholder {cfg.placeholder_token!r} does not tokenize to one token")
        p.placeholder_id = ids[0]
        encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        embeddings = encoder.get_input_embeddings().weight
        with torch.no_grad():
            embeddings[p.placeholder_id] = embeddings[init_ids[0]].clone()
        embeddings.requires_grad_(True)
        p.original_embeddings = embeddings.detach().clone()
        p.keep_rows = torch.ones(len(tokenizer), dtype=torch.bool)
        p.keep_rows[p.placeholder_id] = False

    def hidden_states(self, p: Personalizer, set_index: int, batch: int) -> torch.Tensor:
        ids = p.input_ids[set_index].to(p.device).expand(batch, -1)
        return p.model(ids)[0].to(p.weight_dtype)

    def predict(self, p: Personalizer, noisy: torch.Tensor, timesteps: torch.Tensor,
                hidden: torch.Tensor) -> torch.Tensor:
        return p.unet(noisy.to(p.weight_dtype), timesteps, hidden).sample

    @torch.no_grad()
    def after_step(self, p: Personalizer) -> None:
        weight = p.accelerator.unwrap_model(p.model).get_input_embeddings().weight
        keep = p.keep_rows.to(weight.device)
        weight[keep] = p.original_embeddings.to(weight.device)[keep]

    def trainable_state(self, p: Personalizer, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        row = model.get_input_embeddings().weight[p.placeholder_id]
        return {"placeholder_embedding": row.detach().cpu().clone()}

    def load_trainable_state(self, p: Personalizer, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            model.get_input_embeddings().weight[p.placeholder_id] = state["placeholder_embedding"]

    def save_weights(self, p: Personalizer, model: torch.nn.Module, staging: Path) -> list[str]:
        from safetensors.torch import save_file

        embedding = self.trainable_state(p, model)["placeholder_embedding"].float()
        save_file({p.config.placeholder_token: embedding}, str(staging / EMBEDS_FILE))
        return [EMBEDS_FILE]

    def sampling_parts(self, p: Personalizer, model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
        return p.unet, model


STRATEGIES: dict[str, MethodStrategy] = {"dreambooth": DreamBooth(), "lora": LoRA(),
                                         "textual_inversion": TextualInversion()}
