"""``gwm scan INPUT...``: find a profile's watermark in suspect images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gwm_desktop.cli.common import (
    EngineError,
    add_earlier_option,
    add_engine_options,
    fail,
    make_engine,
    resolve_profile,
)
from gwm_desktop.core.jobs import with_progress
from gwm_desktop.core.profiles import ProfileError, ProfileStore
from gwm_desktop.core.scan_verdict import verdict_of


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("scan", help="score suspect images for your watermark")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    parser.add_argument("--profile", default=None, help="profile name (default: 'default')")
    parser.add_argument("--fpr", type=float, default=0.01, help="false-positive rate of the verdict (default 0.01)")
    parser.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    parser.add_argument("--report", type=Path, default=None, help="write a .csv or .html report")
    add_earlier_option(parser)
    add_engine_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.fpr < 1:
        return fail(f"--fpr must be between 0 and 1, got {args.fpr}")
    if args.report and args.report.suffix.lower() not in (".csv", ".html", ".htm"):
        return fail("--report must end in .csv or .html")
    try:
        profile = resolve_profile(ProfileStore(), args.profile, create_default=False)
        engine = make_engine(args)
        engine.scanner(profile, args.fpr, args.earlier)  # fails early and clearly on a model without calibration
    except (ProfileError, EngineError, RuntimeError, OSError) as error:
        return fail(str(error))
    results = []
    scan = engine.scan_files(args.inputs, profile, args.fpr, earlier=args.earlier)
    for progress in with_progress(scan, "scan", "img"):
        result = progress.payload
        results.append(result)
        if args.json:
            record = {"path": str(result.path), "score": result.score, "flagged": result.flagged}
            if result.error:
                record["error"] = result.error
            print(json.dumps(record), flush=True)
        elif result.error:
            print(f"error      {result.path}: {result.error}")
        else:
            tag = "WATERMARK" if verdict_of(result) == "found" else "clean"
            print(f"{tag:<9}  {result.score:.3f}  {result.path}")
    if args.report:
        from gwm_desktop.core.reports import write_report

        try:
            from gwm_desktop.resources import EARLIER_MODELS

            watermark = EARLIER_MODELS[args.earlier].description if args.earlier else None
            write_report(results, args.report, profile.name, args.fpr, watermark)
        except OSError as error:
            return fail(f"cannot write the report {args.report}: {error.strerror or error}")
        print(f"report written to {args.report}", file=sys.stderr)
    flagged = sum(r.flagged for r in results)
    errors = sum(bool(r.error) for r in results)
    print(f"{len(results)} scanned, {flagged} carry profile {profile.name!r}'s watermark (FPR {args.fpr:g}), "
          f"{errors} unreadable", file=sys.stderr)
    if not results:
        return fail("no images found in the inputs")
    return 1 if errors else 0
