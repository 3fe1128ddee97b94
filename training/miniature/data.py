"""The miniature world's data: a broad captioned corpus (portraits + scikit-image samples + "paintings"
made from portraits by a filter) and one subject (12 Rijksmuseum paintings) the corpus never contains.

Captions are derived from what can be measured in an image (greyscale or colour, dark or light
background) plus generic phrasings, so the text encoder pretrained with the prior learns words that
mean something ("black and white", "painting", "dark background"), as CLIP's do for Stable Diffusion.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from training.datasets import list_images, split_of

SUBJECT_SIZE = 256          # the subject's images as an artist would hand them in (square, 256 px)
SUBJECT_COUNT = 12

SKIMAGE_NAMES = {
    "astronaut": "an astronaut", "cat": "a cat", "chelsea": "a cat", "coffee": "a cup of coffee",
    "rocket": "a rocket", "horse": "a horse", "camera": "a man with a camera", "moon": "the moon",
    "brick": "a brick wall", "grass": "grass", "gravel": "gravel", "coins": "old coins", "text": "text",
    "page": "a page of text", "hubble_deep_field": "stars in space", "retina": "an eye", "logo": "a logo",
    "colorwheel": "a colour wheel", "immunohistochemistry": "cells", "microaneurysms": "an eye",
}
PEOPLE = ("a person", "a face", "a man", "someone")
PHOTO_TEMPLATES = (
    "a photo of {who}", "a portrait photo of {who}", "a {colour} photo of {who}", "a picture of {who}",
    "a photo of {who} on a {bg} background", "a {colour} portrait of {who}", "a close up photo of {who}",
    "a portrait", "a photo", "a portrait in the style of a {colour} photo",
)
PAINTING_TEMPLATES = (
    "a painting of {who}", "an oil painting of {who}", "a portrait painting of {who}",
    "a painting of {who} on a {bg} background", "an old painting of {who}", "a painting", "a portrait",
    "a painting of {who} in the style of an old painting", "a portrait in the style of an oil painting",
)
OBJECT_TEMPLATES = ("a photo of {what}", "a picture of {what}", "a {colour} photo of {what}", "{what}")

# Personalization and synthesis prompts (the subject is an artist's style; "{}" marks the subject token,
# as in training.phase2.synthesize's prompt files). Phase 2 splits them into training, validation and
# held-out prompts.
INSTANCE_PROMPT = "a painting in the style of <sks>"
SUBJECT_PROMPTS = (
    "a painting in the style of {}", "a portrait in the style of {}", "a painting of a person in the style of {}",
    "a painting of a face in the style of {}", "an oil painting in the style of {}",
    "a portrait painting in the style of {}", "a painting of a man in the style of {}",
    "an old portrait in the style of {}", "a painting of someone on a dark background in the style of {}",
    "a picture in the style of {}", "a painting of someone in the style of {}", "an old painting in the style of {}",
    "a painting on a light background in the style of {}", "a close up portrait in the style of {}",
    "a black and white painting in the style of {}", "a portrait of a man in the style of {}",
)
RARE_TOKENS = ("sks", "xqz", "zwx")


def all_caption_words() -> list[str]:
    """Every word the corpus captions and the prompts use, for the tokenizer's vocabulary."""
    texts: list[str] = [*PEOPLE, *PHOTO_TEMPLATES, *PAINTING_TEMPLATES, *OBJECT_TEMPLATES,
                        *SKIMAGE_NAMES.values(), *SUBJECT_PROMPTS, INSTANCE_PROMPT.replace("<sks>", ""),
                        "black and white colour dark light style of the in with", *RARE_TOKENS]
    words: set[str] = set()
    for text in texts:
        for word in text.replace("{", " ").replace("}", " ").replace("<", " ").replace(">", " ").lower().split():
            if word not in {"who", "what", "bg"}:
                words.add(word)
    return sorted(words)


@dataclass
class CorpusItem:
    image: np.ndarray        # (S, S, 3) uint8
    kind: str                # "photo" | "painting" | "object"
    grey: bool
    background: str          # "dark" | "light"
    what: str = ""           # object phrase for scikit-image samples


def square_crop(image: Image.Image, top_bias: float = 0.3) -> Image.Image:
    """Largest square; tall images keep their upper part (faces in head-and-shoulder portraits)."""
    width, height = image.size
    side = min(width, height)
    left = (width - side) // 2
    top = int((height - side) * top_bias) if height > width else (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def load_square(path: Path, size: int, top_bias: float = 0.3) -> np.ndarray:
    with Image.open(path) as image:
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    return np.asarray(square_crop(rgb, top_bias).resize((size, size), Image.Resampling.LANCZOS)).copy()


def measure(image: np.ndarray) -> tuple[bool, str]:
    """(grey?, background) from pixel statistics: chroma spread, and the top corners' brightness."""
    rgb = image.astype(np.float32)
    grey = float(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean()) < 4.0
    corner = max(2, image.shape[0] // 8)
    corners = np.concatenate([rgb[:corner, :corner], rgb[:corner, -corner:]]).mean()
    return grey, ("dark" if corners < 110 else "light")


def paint_like(image: np.ndarray, rng: random.Random) -> np.ndarray:
    """A crude "painting" made from a photo: smoothed, posterised, warm old-varnish tint.

    Gives the prior a generic notion of "painting" (as Stable Diffusion has from LAION) without ever
    showing it the subject's paintings.
    """
    picture = Image.fromarray(image).filter(ImageFilter.ModeFilter(3)).filter(ImageFilter.SMOOTH_MORE)
    picture = ImageOps.posterize(picture, rng.choice((3, 4)))
    array = np.asarray(picture).astype(np.float32)
    tint = np.array([1.0, 0.86 + 0.06 * rng.random(), 0.62 + 0.1 * rng.random()], dtype=np.float32)
    array = array * tint * (0.75 + 0.2 * rng.random())
    return array.clip(0, 255).astype(np.uint8)


def build_corpus(portraits: Path, extra: Sequence[Path], size: int, split: str = "train_pool",
                 painting_share: float = 0.25, max_images: int = 0, seed: int = 0) -> list[CorpusItem]:
    """The broad corpus at ``size`` px. ``split``: "train_pool" (all but the eval split) or "eval".

    A ``painting_share`` of the portraits also appears as a filtered "painting" (its own item).
    """
    rng = random.Random(seed)
    paths = [p for p in list_images([portraits]) if (split_of(p) == "eval") == (split == "eval")]
    if max_images:
        paths = paths[:max_images]
    items: list[CorpusItem] = []
    for path in paths:
        image = load_square(path, size)
        grey, background = measure(image)
        items.append(CorpusItem(image, "photo", grey, background))
        if split != "eval" and rng.random() < painting_share:
            painted = paint_like(image, rng)
            items.append(CorpusItem(painted, "painting", False, measure(painted)[1]))
    for folder in extra:
        for path in list_images([folder]):
            stem = path.stem.removeprefix("skimage_")
            image = load_square(path, size, top_bias=0.5)
            grey, background = measure(image)
            items.append(CorpusItem(image, "object", grey, background, SKIMAGE_NAMES.get(stem, "an object")))
    return items


def caption(item: CorpusItem, rng: random.Random) -> str:
    colour = "black and white" if item.grey else "colour"
    if item.kind == "object":
        template = rng.choice(OBJECT_TEMPLATES)
        return template.format(what=item.what, colour=colour)
    templates = PAINTING_TEMPLATES if item.kind == "painting" else PHOTO_TEMPLATES
    return rng.choice(templates).format(who=rng.choice(PEOPLE), colour=colour, bg=item.background)


def stack_images(items: Iterable[CorpusItem]) -> torch.Tensor:
    """(N, 3, S, S) uint8."""
    return torch.from_numpy(np.stack([item.image for item in items])).permute(0, 3, 1, 2).contiguous()


def prepare_subject(paintings: Path, out_dir: Path, count: int = SUBJECT_COUNT,
                    size: int = SUBJECT_SIZE) -> list[Path]:
    """The subject's images: the first ``count`` paintings by name, square-cropped, ``size`` px PNG.

    Writes ``subject_files.json`` (which source file each image came from); the rest are kept out.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = list_images([paintings])[:count]
    if len(sources) < count:
        raise ValueError(f"need {count} subject images in {paintings}, found {len(sources)}")
    written = []
    for source in sources:
        target = out_dir / f"{source.stem}.png"
        if not target.exists():
            Image.fromarray(load_square(source, size, top_bias=0.3)).save(target)
        written.append(target)
    (out_dir.parent / "subject_files.json").write_text(
        json.dumps({"source": str(paintings), "files": [s.name for s in sources]}, indent=2) + "\n")
    return written
