"""Draw the app icon (a shield with watermark waves) and write it as PNG, Windows .ico and macOS .icns.

    python packaging/make_icons.py

The outputs in packaging/icons/ are committed, so a build needs no drawing step.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parent / "icons"
SIZE = 1024
TOP, BOTTOM = (38, 70, 140), (24, 140, 150)  # indigo to teal


def draw_icon(size: int = SIZE) -> Image.Image:
    scale = size / 1024
    gradient = Image.new("RGBA", (1, size))
    for y in range(size):
        t = y / (size - 1)
        gradient.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(TOP, BOTTOM, strict=True)) + (255,))
    background = gradient.resize((size, size))
    mask = Image.new("L", (size, size), 0)
    margin = round(64 * scale)
    ImageDraw.Draw(mask).rounded_rectangle((margin, margin, size - margin, size - margin),
                                           radius=round(200 * scale), fill=255)
    icon = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    icon.paste(background, (0, 0), mask)

    draw = ImageDraw.Draw(icon)
    cx, top, bottom, half = size / 2, 220 * scale, 830 * scale, 250 * scale
    shield = [(cx - half, top + 40 * scale), (cx, top), (cx + half, top + 40 * scale), (cx + half, 520 * scale)]
    shield += [(cx + half * math.cos(i / 12 * math.pi / 2), 520 * scale + (bottom - 520 * scale) * math.sin(i / 12 * math.pi / 2))
               for i in range(1, 13)]
    left = [(2 * cx - x, y) for x, y in reversed(shield[3:-1])]
    draw.polygon(shield + left, fill=(250, 250, 252, 255))

    width = round(26 * scale)
    for row, color in enumerate(((38, 70, 140, 255), (24, 140, 150, 255), (38, 70, 140, 255))):
        y0 = (420 + row * 110) * scale
        points = [(cx - 170 * scale + x * scale, y0 + 32 * scale * math.sin(x / 340 * 2 * math.pi))
                  for x in range(0, 341, 10)]
        draw.line(points, fill=color, width=width, joint="curve")
    return icon


def main() -> None:
    ICONS.mkdir(parents=True, exist_ok=True)
    icon = draw_icon()
    icon.resize((256, 256), Image.Resampling.LANCZOS).save(ICONS / "gwm-desktop.png")
    icon.save(ICONS / "gwm-desktop.ico", sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128),
                                                 (256, 256)])
    icon.save(ICONS / "gwm-desktop.icns")
    print(f"icons written to {ICONS}")


if __name__ == "__main__":
    main()
