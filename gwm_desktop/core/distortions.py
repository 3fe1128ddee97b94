"""SPEC section 3's standard distortions and training transforms, applied to full-resolution PIL images.

Used by evaluation (``gwm eval``) and by tests; training uses differentiable counterparts at the
working resolution (``training.distortion_layer``).
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

Distortion = Callable[[Image.Image], Image.Image]


def _encode_decode(image: Image.Image, fmt: str, **params: object) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt, **params)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def jpeg(quality: int) -> Distortion:
    return lambda image: _encode_decode(image, "JPEG", quality=quality)


def webp(quality: int) -> Distortion:
    return lambda image: _encode_decode(image, "WEBP", quality=quality)


def _scaled(image: Image.Image, factor: float) -> Image.Image:
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BICUBIC)


def resize_and_back(factor: float) -> Distortion:
    return lambda image: _scaled(image, factor).resize(image.size, Image.Resampling.BICUBIC)


def center_crop(keep: float) -> Distortion:
    def apply(image: Image.Image) -> Image.Image:
        width, height = round(image.width * keep), round(image.height * keep)
        left, top = (image.width - width) // 2, (image.height - height) // 2
        return image.crop((left, top, left + width, top + height))
    return apply


def gaussian_blur(sigma: float) -> Distortion:
    # Pillow's GaussianBlur radius is the standard deviation.
    return lambda image: image.filter(ImageFilter.GaussianBlur(radius=sigma))


def gaussian_noise(sigma: float, seed: int = 0) -> Distortion:
    def apply(image: Image.Image) -> Image.Image:
        # Seeded from the image content so a rerun gives the same figures.
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        rng = np.random.default_rng(seed + int(array[::17, ::17].sum() * 1000) % 2**31)
        noisy = array + rng.normal(0.0, sigma, array.shape).astype(np.float32)
        return Image.fromarray(np.clip(np.rint(noisy * 255.0), 0, 255).astype(np.uint8))
    return apply


def brightness_contrast(brightness: float, contrast: float) -> Distortion:
    def apply(image: Image.Image) -> Image.Image:
        brighter = ImageEnhance.Brightness(image.convert("RGB")).enhance(brightness)
        return ImageEnhance.Contrast(brighter).enhance(contrast)
    return apply


def screenshot() -> Distortion:
    return lambda image: _encode_decode(_scaled(image, 0.75), "JPEG", quality=85)


STANDARD_DISTORTIONS: dict[str, Distortion] = {
    "jpeg90": jpeg(90),
    "jpeg75": jpeg(75),
    "jpeg50": jpeg(50),
    "resize0.5": resize_and_back(0.5),
    "crop0.8": center_crop(0.8),
    "blur1": gaussian_blur(1.0),
    "noise0.02": gaussian_noise(0.02),
    "bright1.1_contrast0.9": brightness_contrast(1.1, 0.9),
    "webp80": webp(80),
    "screenshot": screenshot(),
}


def _image_rng(image: Image.Image, salt: int) -> random.Random:
    """A generator seeded from the image content, so a rerun draws the same crop for the same image."""
    small = np.asarray(image.convert("L").resize((16, 16), Image.Resampling.BILINEAR), dtype=np.uint8)
    return random.Random(hashlib.sha256(small.tobytes() + salt.to_bytes(4, "big")).digest())


def horizontal_flip() -> Distortion:
    return lambda image: image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def square_center_crop() -> Distortion:
    """diffusers' ``--center_crop``: the centred square of the shorter side."""
    def apply(image: Image.Image) -> Image.Image:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        return image.crop((left, top, left + side, top + side))
    return apply


def random_crop_box(image: Image.Image, low: float = 0.5, high: float = 0.9, salt: int = 1) -> tuple[int, int, int, int]:
    """The box ``random_crop`` keeps of this image: (left, top, right, bottom)."""
    rng = _image_rng(image, salt)
    width = max(1, round(image.width * rng.uniform(low, high)))
    height = max(1, round(image.height * rng.uniform(low, high)))
    left, top = rng.randint(0, image.width - width), rng.randint(0, image.height - height)
    return left, top, left + width, top + height


def random_crop(low: float = 0.5, high: float = 0.9, salt: int = 1) -> Distortion:
    """Keep ``low``-``high`` of each side (drawn independently, so any aspect) at any position."""
    return lambda image: image.crop(random_crop_box(image, low, high, salt))


def rotation_frame(image: Image.Image, max_degrees: float = 5.0, salt: int = 2) -> tuple[float, tuple[int, int, int, int]]:
    """``rotation``'s angle for this image (degrees, counter-clockwise as Pillow turns) and the box it keeps."""
    angle = _image_rng(image, salt).uniform(-max_degrees, max_degrees)
    radians = math.radians(abs(angle))
    cos, sin = math.cos(radians), math.sin(radians)
    # The axis-aligned rectangle of the same aspect that fits inside the rotated frame.
    scale = min(image.width / (image.width * cos + image.height * sin),
                image.height / (image.width * sin + image.height * cos))
    width, height = max(1, int(image.width * scale)), max(1, int(image.height * scale))
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return angle, (left, top, left + width, top + height)


def rotation(max_degrees: float = 5.0, salt: int = 2) -> Distortion:
    """Rotate by up to ``max_degrees`` either way, then crop to the largest upright rectangle inside."""
    def apply(image: Image.Image) -> Image.Image:
        angle, box = rotation_frame(image, max_degrees, salt)
        return image.convert("RGB").rotate(angle, resample=Image.Resampling.BICUBIC).crop(box)
    return apply


def bucket_geometry(image: Image.Image, resolution: int, salt: int = 3) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """``resolution_bucket``'s resized size for this image and the square it keeps of that."""
    factor = resolution / min(image.size)
    size = (max(resolution, round(image.width * factor)), max(resolution, round(image.height * factor)))
    rng = _image_rng(image, salt)
    left, top = rng.randint(0, size[0] - resolution), rng.randint(0, size[1] - resolution)
    return size, (left, top, left + resolution, top + resolution)


def resolution_bucket(resolution: int, salt: int = 3) -> Distortion:
    """A trainer's bucket: shorter side to ``resolution``, then a random square crop (diffusers' default)."""
    def apply(image: Image.Image) -> Image.Image:
        size, box = bucket_geometry(image, resolution, salt)
        return image.convert("RGB").resize(size, Image.Resampling.BICUBIC).crop(box)
    return apply


def latent_round_trip(autoencoder: Callable[[], object] | None = None) -> Distortion:
    """Encode and decode through TAEF2 (``core.taef2``) at the image's size (rounded to multiples of 8)."""
    def apply(image: Image.Image) -> Image.Image:
        import torch

        from gwm_desktop.core.taef2 import shared_autoencoder

        model = autoencoder() if autoencoder is not None else shared_autoencoder()
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        with torch.no_grad():
            out = model.round_trip(torch.from_numpy(array).permute(2, 0, 1)[None])[0]
        return Image.fromarray(np.rint(out.permute(1, 2, 0).numpy() * 255.0).astype(np.uint8))
    return apply


def chain(*steps: Distortion) -> Distortion:
    def apply(image: Image.Image) -> Image.Image:
        for step in steps:
            image = step(image)
        return image
    return apply


TRAINING_TRANSFORMS: dict[str, Distortion] = {
    "flip": horizontal_flip(),
    "square_crop": square_center_crop(),
    "random_crop": random_crop(),
    "rotate5": rotation(5.0),
    "bucket512": resolution_bucket(512),
    "bucket768": resolution_bucket(768),
    "bucket1024": resolution_bucket(1024),
    "latent": latent_round_trip(),
    "bucket512_latent": chain(resolution_bucket(512), latent_round_trip()),
    "bucket512_flip_latent": chain(resolution_bucket(512), horizontal_flip(), latent_round_trip()),
}
