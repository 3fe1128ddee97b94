"""Synthesis of S and S_w: images from a (personalized) text-to-image pipeline, every one reproducible.

Each image is one (prompt, seed) pair: its initial latent noise comes from a CPU ``torch.Generator``
seeded with ``seed`` alone, so the same pair gives the same image again (on the same device and dtype),
whatever batch it was made in. ``out_dir/records.jsonl`` holds one line per written image,
``{file, prompt, seed, steps, guidance, resolution, negative_prompt}``; a rerun skips the images
already recorded with the same settings, so an interrupted job resumes where it stopped.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from gwm_desktop.core.atomic import write_atomic
from gwm_desktop.core.jobs import CancelToken, Progress

RECORDS_FILE = "records.jsonl"

_ART = [
    "a painting in the style of {}",
    "a landscape painting in the style of {}",
    "a portrait of a woman in the style of {}",
    "a portrait of an old man in the style of {}",
    "a still life with fruit in the style of {}",
    "a city street at night in the style of {}",
    "a harbour with boats in the style of {}",
    "a forest in autumn in the style of {}",
    "a cat sitting on a chair in the style of {}",
    "a mountain lake at sunrise in the style of {}",
    "a vase of flowers in the style of {}",
    "a lighthouse in a storm in the style of {}",
    "a market square full of people in the style of {}",
    "a horse in a field in the style of {}",
    "a bridge over a river in the style of {}",
    "a castle on a hill in the style of {}",
    "a village in winter in the style of {}",
    "a dancer on a stage in the style of {}",
    "a garden with a fountain in the style of {}",
    "an abstract composition in the style of {}",
    "a sailing ship at sea in the style of {}",
    "a self-portrait in the style of {}",
    "a kitchen interior in the style of {}",
    "a sunflower field under a blue sky in the style of {}",
]
_FACE = [
    "a photo of {} person",
    "a close-up photo of {} person",
    "a photo of {} person smiling",
    "a photo of {} person wearing sunglasses",
    "a photo of {} person on the beach",
    "a photo of {} person in a forest",
    "a photo of {} person in a city street",
    "a portrait photo of {} person, studio lighting",
    "a photo of {} person wearing a hat",
    "a photo of {} person reading a book",
    "a painting of {} person",
    "a pencil sketch of {} person",
    "a photo of {} person in the snow",
    "a photo of {} person at night",
    "a photo of {} person with short hair",
    "a photo of {} person in a red jacket",
    "a black and white photo of {} person",
    "a photo of {} person drinking coffee",
    "a photo of {} person in front of a mountain",
    "an oil painting of {} person",
    "a photo of {} person laughing",
    "a photo of {} person in an office",
    "a profile photo of {} person",
    "a photo of {} person riding a bicycle",
]


def default_prompts(kind: str, placeholder: str = "<sks>") -> list[str]:
    """The built-in prompt list for ``kind`` ('art' or 'face'), with ``placeholder`` as the subject token."""
    if kind not in ("art", "face"):
        raise ValueError(f"prompt set must be 'art' or 'face', got {kind!r}")
    return [template.format(placeholder) for template in (_ART if kind == "art" else _FACE)]


# The placeholder "<sks>" as shipped; use `default_prompts(kind, token)` for another token.
DEFAULT_PROMPTS: dict[str, list[str]] = {"art": default_prompts("art"), "face": default_prompts("face")}


def load_prompts(source: str, placeholder: str = "<sks>") -> list[str]:
    """'art' | 'face' | a text file with one prompt per line ('{}' or '<sks>' marks the subject; '#' comments)."""
    if source in ("art", "face"):
        return default_prompts(source, placeholder)
    lines = Path(source).read_text(encoding="utf-8").splitlines()
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise ValueError(f"no prompts in {source}")
    return [p.replace("{}", placeholder).replace("<sks>", placeholder) for p in prompts]


@dataclass
class SynthRecord:
    file: str
    prompt: str
    seed: int
    steps: int
    guidance: float
    resolution: int | None
    negative_prompt: str | None = None

    def settings(self) -> tuple[Any, ...]:
        return (self.prompt, self.seed, self.steps, self.guidance, self.resolution, self.negative_prompt)


def read_records(out_dir: Path) -> list[SynthRecord]:
    path = Path(out_dir) / RECORDS_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            records.append(SynthRecord(**json.loads(line)))
    return records


def image_name(prompt_index: int, seed: int) -> str:
    return f"p{prompt_index:03d}_s{seed}.png"


@torch.no_grad()
def generate(pipeline: Any, prompts: Sequence[str], seeds: Sequence[int], steps: int, guidance: float,
             resolution: int | None, negative_prompt: str | None = None) -> list[Any]:
    """One batch: PIL images for (prompts[i], seeds[i]); each latent drawn from its own seeded CPU generator."""
    generators = [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]
    size = resolution or None
    return pipeline(list(prompts), num_inference_steps=steps, guidance_scale=guidance, height=size, width=size,
                    generator=generators, negative_prompt=[negative_prompt] * len(prompts) if negative_prompt else None,
                    output_type="pil").images


def seeds_per_prompt(prompts: Sequence[str], seeds: Sequence[int] | Sequence[Sequence[int]]) -> list[list[int]]:
    """``seeds`` as one list per prompt: a flat list is shared by every prompt."""
    if seeds and isinstance(seeds[0], Sequence):
        if len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seed lists for {len(prompts)} prompts")
        return [[int(s) for s in own] for own in seeds]
    return [[int(s) for s in seeds] for _ in prompts]


def synthesize(pipeline: Any, prompts: list[str], seeds: Sequence[int] | Sequence[Sequence[int]], out_dir: Path,
               steps: int = 30, guidance: float = 7.5, resolution: int | None = None, cancel: CancelToken | None = None,
               batch_size: int = 1, negative_prompt: str | None = None) -> Iterator[Progress]:
    """Generate every (prompt, seed) pair into ``out_dir`` as PNG; one Progress per image (payload SynthRecord).

    seeds: one list for every prompt, or one list per prompt (``seeds_per_prompt``).

    pipeline: a diffusers text-to-image pipeline (``load_personalized`` / ``load_base_pipeline``).
    resolution: image side in px (None: the pipeline's default). batch_size > 1 is faster on a GPU;
    the images then match a batch-1 regeneration up to float rounding (same seeds, same noise).
    Each PNG is written atomically and recorded after it exists, so cancelling leaves no partial file.
    """
    cancel = cancel or CancelToken()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(pipeline, "set_progress_bar_config"):
        pipeline.set_progress_bar_config(disable=True)
    done_settings = {r.settings(): r for r in read_records(out_dir) if (out_dir / r.file).exists()}
    jobs: list[SynthRecord] = [
        SynthRecord(image_name(pi, seed), prompt, int(seed), steps, float(guidance), resolution, negative_prompt)
        for pi, (prompt, own) in enumerate(zip(prompts, seeds_per_prompt(prompts, seeds), strict=True))
        for seed in own]
    total = len(jobs)
    pending = [job for job in jobs if job.settings() not in done_settings]
    done = total - len(pending)
    if done:
        yield Progress(done, total, f"{done} images already made", None)
    with open(out_dir / RECORDS_FILE, "a", encoding="utf-8") as log:
        for start in range(0, len(pending), max(1, batch_size)):
            cancel.raise_if_cancelled()
            batch = pending[start:start + max(1, batch_size)]
            images = generate(pipeline, [j.prompt for j in batch], [j.seed for j in batch], steps, guidance,
                              resolution, negative_prompt)
            for job, image in zip(batch, images, strict=True):
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                write_atomic(out_dir / job.file, buffer.getvalue())
                log.write(json.dumps(asdict(job)) + "\n")
                log.flush()
                done += 1
                yield Progress(done, total, job.file, job)


def regenerate(pipeline: Any, record: SynthRecord) -> Any:
    """The PIL image a record describes, made again from its (prompt, seed, steps, guidance, resolution)."""
    return generate(pipeline, [record.prompt], [record.seed], record.steps, record.guidance, record.resolution,
                    record.negative_prompt)[0]
