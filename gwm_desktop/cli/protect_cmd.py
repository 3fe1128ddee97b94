"""``gwm protect INPUT... --out DIR``: export protected copies; originals are never touched."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gwm_desktop.cli.common import (
    EngineError,
    add_engine_options,
    fail,
    make_engine,
    resolve_profile,
)
from gwm_desktop.core.flat_colour import FLAT_COLOUR_NOTE
from gwm_desktop.core.image_io import EncodeOptions
from gwm_desktop.core.jobs import with_progress
from gwm_desktop.core.levels import DEFAULT_LEVEL, LEVELS, level_by_name
from gwm_desktop.core.profiles import ProfileError, ProfileStore


def register(sub: argparse._SubParsersAction) -> None:
    levels = ", ".join(f"{lv.name} (p={lv.p:g})" for lv in LEVELS)
    parser = sub.add_parser("protect", help="add your invisible watermark to images",
                            description="Write watermarked copies of INPUT files/folders into --out. "
                            f"Levels: {levels}.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    parser.add_argument("--out", required=True, type=Path,
                        help="output folder (created if needed); an existing file is never overwritten: "
                        "the copy gets the next free name, 'art (1).png'")
    parser.add_argument("--profile", default=None, help="profile name (default: 'default', created on first use)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--level", default=None, help=f"invisibility level (default {DEFAULT_LEVEL})")
    group.add_argument("--p", type=float, default=None, help="LPIPS budget p directly (0 < p < 1)")
    parser.add_argument("--format", default="same", choices=["same", "png", "jpeg", "webp"],
                        help="output format (default: same as the input)")
    parser.add_argument("--jpeg-quality", type=int, default=95, choices=range(1, 101), metavar="1-100",
                        help="JPEG quality (default 95; raised for a file whose codec alone would exceed p)")
    parser.add_argument("--webp-quality", type=int, default=95, choices=range(1, 101), metavar="1-100",
                        help="WebP quality (default 95; raised, up to lossless, when needed to meet p)")
    parser.add_argument("--strip-metadata", action="store_true", help="drop ICC profile and EXIF")
    add_engine_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        p = args.p if args.p is not None else level_by_name(args.level or DEFAULT_LEVEL).p
        if not 0 < p < 1:
            return fail(f"--p must be between 0 and 1, got {p}")
        profile = resolve_profile(ProfileStore(), args.profile)
    except (ValueError, ProfileError) as error:
        return fail(str(error))
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = "it is a file" if args.out.is_file() else (error.strerror or str(error))
        return fail(f"cannot create the output folder {args.out}: {reason}")
    options = EncodeOptions(format=args.format, jpeg_quality=args.jpeg_quality, webp_quality=args.webp_quality,
                            keep_metadata=not args.strip_metadata)
    try:
        engine = make_engine(args)
    except EngineError as error:
        return fail(str(error))
    failures, exported = [], 0
    for progress in with_progress(engine.protect_files(args.inputs, args.out, profile, p, options),
                                  "protect", "img"):
        item = progress.payload
        if item.ok:
            exported += 1
            note = f"; {FLAT_COLOUR_NOTE}" if item.flat_colour else ""
            print(f"ok     {item.source} -> {item.output}  (LPIPS {item.lpips:.4f}, PSNR {item.psnr:.1f} dB{note})")
        else:
            failures.append(item)
            print(f"FAILED {item.source}: {item.error}", file=sys.stderr)
    print(f"{exported} exported, {len(failures)} failed (profile {profile.name!r}, p={p:g})", file=sys.stderr)
    if exported == 0 and not failures:
        return fail("no images found in the inputs")
    return 1 if failures else 0
