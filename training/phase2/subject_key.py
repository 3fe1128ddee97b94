"""The subject's key for a Phase 2 run: from a key file or a profile, never written or logged."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from training.phase2.config import Phase2Config


def read_key(config: Phase2Config) -> bytes:
    """The profile key from ``key_file`` (raw bytes or a profile export) or the named profile; never logged."""
    from gwm_desktop.core.keys import KEY_BYTES

    if config.key_file:
        data = Path(config.key_file).read_bytes()
        if len(data) == KEY_BYTES:
            return data
        try:
            payload = json.loads(data.decode("utf-8"))
            return base64.b64decode(payload["key"], validate=True)
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, ValueError) as error:
            raise ValueError(f"{config.key_file} is neither a {KEY_BYTES}-byte key nor a profile export") from error
    from gwm_desktop.core.profiles import ProfileStore

    store = ProfileStore()
    return (store.get(config.profile) if config.profile else store.get_or_create_default()).key

