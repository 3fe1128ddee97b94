"""The standard distortions of SPEC section 3, applied to full-resolution PIL images.

Used by evaluation (``gwm eval``) and by tests; training uses differentiable counterparts at the
working resolution (``training.distortion_layer``).
"""

from __future__ import annotations

import io
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
