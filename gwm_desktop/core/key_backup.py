"""The profile backup file: a profile's name and secret key, sealed with a passphrase.

Format ``gwm-profile-v2`` (JSON): the key is encrypted with AES-256-GCM under a key derived from the
passphrase by scrypt (both from the ``cryptography`` package); the name, creation time and KDF
parameters are authenticated with it, so a changed byte anywhere is refused. Without the passphrase
the file reveals nothing about the key. Backups of the older plain format ``gwm-profile-v1`` (key in
base64) still open, and say so, so the caller can warn.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENCRYPTED_FORMAT = "gwm-profile-v2"
PLAIN_FORMAT = "gwm-profile-v1"
MAX_BACKUP_BYTES = 64 * 1024  # a real backup is a few hundred bytes; never read /dev/zero to the end
MIN_PASSPHRASE_CHARS = 8
# scrypt cost: ~0.1 s and 32 MiB per try on a laptop. A file asking for more than the caps is refused
# instead of being allowed to exhaust memory or time.
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_SCRYPT_CAPS = {"n": 2**20, "r": 32, "p": 16}
_SCRYPT_MAX_MEMORY = 1 << 30


class BackupError(ValueError):
    """A backup file that cannot be written or opened; the message is one line a person can act on."""


class WrongPassphrase(BackupError):
    pass


@dataclass(frozen=True)
class Backup:
    name: str
    created: float
    key: bytes
    encrypted: bool


def check_passphrase(passphrase: str) -> str:
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise BackupError(f"the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")
    return passphrase


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _header(payload: dict[str, Any]) -> bytes:
    """The authenticated, unencrypted part: everything except the nonce and the ciphertext."""
    fields = {k: v for k, v in payload.items() if k not in ("nonce", "ciphertext")}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")


def seal(name: str, created: float, key: bytes, passphrase: str) -> bytes:
    """The bytes of an encrypted backup file."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    check_passphrase(passphrase)
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    payload: dict[str, Any] = {
        "format": ENCRYPTED_FORMAT, "name": name, "created": created,
        "kdf": {"name": "scrypt", "salt": base64.b64encode(salt).decode("ascii"), **_SCRYPT},
        "cipher": "AES-256-GCM",
    }
    sealed = AESGCM(_derive(passphrase, salt, **_SCRYPT)).encrypt(nonce, key, _header(payload))
    payload["nonce"] = base64.b64encode(nonce).decode("ascii")
    payload["ciphertext"] = base64.b64encode(sealed).decode("ascii")
    return (json.dumps(payload, indent=2) + "\n").encode("utf-8")


def read_backup(path: Path) -> dict[str, Any]:
    """The parsed backup file, its shape checked; BackupError for anything else (at most 64 KiB read)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BACKUP_BYTES + 1)
    except OSError as error:
        raise BackupError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > MAX_BACKUP_BYTES:
        raise BackupError(f"{path} is not a GenWatermark profile backup (over {MAX_BACKUP_BYTES // 1024} KiB)")
    try:
        payload = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BackupError(f"{path} is not a GenWatermark profile backup (not JSON)") from None
    if not isinstance(payload, dict) or payload.get("format") not in (PLAIN_FORMAT, ENCRYPTED_FORMAT):
        raise BackupError(f"{path} is not a GenWatermark profile backup")
    if not isinstance(payload.get("name"), str):
        raise BackupError(f"{path} is damaged: it has no profile name")
    if not isinstance(payload.get("created", 0), int | float):
        raise BackupError(f"{path} is damaged: bad creation time")
    return payload


def is_encrypted(payload: dict[str, Any]) -> bool:
    return payload.get("format") == ENCRYPTED_FORMAT


def _b64(payload: dict[str, Any], field: str, where: str) -> bytes:
    value = payload.get(field)
    if not isinstance(value, str):
        raise BackupError(f"{where} is damaged: no {field}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BackupError(f"{where} is damaged: {field} is not base64") from None


def open_backup(payload: dict[str, Any], passphrase: str | None, where: str = "the backup") -> Backup:
    """The name and key of a parsed backup. WrongPassphrase when the passphrase does not open it."""
    created = float(payload.get("created", 0))
    if not is_encrypted(payload):
        return Backup(payload["name"], created, _b64(payload, "key", where), encrypted=False)
    if passphrase is None:
        raise WrongPassphrase(f"{where} is encrypted: a passphrase is needed")
    kdf = payload.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt" or payload.get("cipher") != "AES-256-GCM":
        raise BackupError(f"{where} uses an unknown encryption")
    params = {k: kdf.get(k) for k in _SCRYPT}
    if not all(isinstance(v, int) and 0 < v <= _SCRYPT_CAPS[k] for k, v in params.items()) \
            or 128 * params["n"] * params["r"] * params["p"] > _SCRYPT_MAX_MEMORY:
        raise BackupError(f"{where} asks for unreasonable key-derivation settings")
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce, sealed = _b64(kdf, "salt", where), _b64(payload, "nonce", where), _b64(payload, "ciphertext", where)
    try:
        key = AESGCM(_derive(passphrase, salt, **params)).decrypt(nonce, sealed, _header(payload))
    except InvalidTag:
        raise WrongPassphrase(f"wrong passphrase for {where} (or the file was changed)") from None
    except ValueError as error:  # e.g. a nonce of the wrong length
        raise BackupError(f"{where} is damaged: {error}") from None
    return Backup(payload["name"], created, key, encrypted=True)
