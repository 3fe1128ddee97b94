"""``gwm profile create|list|export|import|rename|delete``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gwm_desktop.cli.common import fail
from gwm_desktop.core.profiles import ProfileError, ProfileStore


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("profile", help="manage artist profiles (each has its own secret key)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a profile with a new secret key")
    create.add_argument("name")
    actions.add_parser("list", help="list profiles")
    export = actions.add_parser("export", help="back up a profile's key to a file (keep it secret)")
    export.add_argument("name")
    export.add_argument("file", type=Path)
    imp = actions.add_parser("import", help="restore a profile from an export file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--name", default=None, help="import under another name")
    rename = actions.add_parser("rename", help="rename a profile")
    rename.add_argument("old")
    rename.add_argument("new")
    delete = actions.add_parser("delete", help="delete a profile and its key (irreversible without a backup)")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    store = ProfileStore()
    try:
        if args.action == "create":
            profile = store.create(args.name)
            print(f"created profile {profile.name!r} in {profile.folder}")
            print("back up its key with `gwm profile export` and keep the file private", file=sys.stderr)
        elif args.action == "list":
            profiles = store.list()
            if not profiles:
                print("no profiles yet (`gwm profile create NAME`, or `gwm protect` creates 'default')")
            for profile in profiles:
                custom = " (custom detector)" if profile.detector_folder else ""
                print(f"{profile.name}{custom}")
        elif args.action == "export":
            if args.file.exists():
                return fail(f"{args.file} already exists; choose another file name")
            store.export(args.name, args.file)
            print(f"exported {args.name!r} to {args.file} (owner-only file: it contains the secret key)")
        elif args.action == "import":
            profile = store.import_(args.file, args.name)
            print(f"imported profile {profile.name!r}")
        elif args.action == "rename":
            store.rename(args.old, args.new)
            print(f"renamed {args.old!r} to {args.new!r}")
        elif args.action == "delete":
            if not args.yes:
                if not sys.stdin.isatty():
                    return fail("refusing to delete without --yes when not interactive")
                answer = input(f"Delete profile {args.name!r} and its key? Export it first if unsure. [y/N] ")
                if answer.strip().lower() not in ("y", "yes"):
                    print("kept")
                    return 1
            store.delete(args.name)
            print(f"deleted {args.name!r}")
    except ProfileError as error:
        return fail(str(error))
    return 0
