import base64
import json
import os
import stat
from pathlib import Path

import pytest

from gwm_desktop.core.profiles import ProfileError, ProfileStore


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_create_list_rename_delete(isolated_home):
    store = ProfileStore()
    assert store.home == isolated_home
    alice = store.create("Alice Painter")
    assert [p.name for p in store.list()] == ["Alice Painter"]
    key = alice.key
    assert len(key) == 32
    assert mode(alice.folder / "key.bin") == 0o600
    renamed = store.rename("Alice Painter", "alice")
    assert renamed.key == key
    with pytest.raises(ProfileError, match="already exists"):
        store.create("alice")
    store.delete("alice")
    assert store.list() == []


PASSPHRASE = "correct horse battery"


def test_export_import_round_trip_keeps_the_key_and_is_owner_only(tmp_path):
    store = ProfileStore()
    original = store.create("bob")
    export = tmp_path / "bob.gwmkey"
    store.export("bob", export, PASSPHRASE)
    assert mode(export) == 0o600
    assert json.loads(export.read_text())["format"] == "gwm-profile-v2"
    other = ProfileStore(tmp_path / "other_home")
    restored, encrypted = other.import_(export, passphrase=PASSPHRASE)
    assert encrypted and restored.name == "bob" and restored.key == original.key


def test_an_encrypted_backup_reveals_nothing_without_its_passphrase(tmp_path):
    store = ProfileStore()
    key = store.create("bob").key
    export = tmp_path / "bob.gwmkey"
    store.export("bob", export, PASSPHRASE)
    raw = export.read_bytes()
    assert key not in raw and base64.b64encode(key) not in raw and key.hex().encode() not in raw
    other = ProfileStore(tmp_path / "other_home")
    with pytest.raises(ProfileError, match="passphrase is needed"):
        other.import_(export)
    with pytest.raises(ProfileError, match="wrong passphrase"):
        other.import_(export, passphrase="correct horse battery!")
    payload = json.loads(raw)
    payload["name"] = "mallory"  # the name is authenticated with the key
    export.write_text(json.dumps(payload))
    with pytest.raises(ProfileError, match="wrong passphrase"):
        other.import_(export, passphrase=PASSPHRASE)
    assert other.list() == []


def test_a_short_passphrase_is_refused_and_an_existing_file_is_kept(tmp_path):
    store = ProfileStore()
    store.create("bob")
    with pytest.raises(ProfileError, match="at least 8"):
        store.export("bob", tmp_path / "short.gwmkey", "1234567")
    assert not (tmp_path / "short.gwmkey").exists()
    taken = tmp_path / "taken.gwmkey"
    taken.write_bytes(b"someone's file")
    with pytest.raises(ProfileError, match="already exists"):
        store.export("bob", taken, PASSPHRASE)
    assert taken.read_bytes() == b"someone's file"
    store.export("bob", taken, PASSPHRASE, overwrite=True)  # the GUI's save dialog asked first
    assert json.loads(taken.read_text())["format"] == "gwm-profile-v2"


def test_the_old_plain_backup_still_imports_and_says_it_was_plain(tmp_path):
    key = bytes(range(32))
    plain = tmp_path / "old.json"
    plain.write_text(json.dumps({"format": "gwm-profile-v1", "name": "carol", "created": 1.0,
                                 "key": base64.b64encode(key).decode()}))
    profile, encrypted = ProfileStore().import_(plain)
    assert not encrypted and profile.name == "carol" and profile.key == key


@pytest.mark.parametrize("content, reason", [
    ("[1, 2]", "not a GenWatermark profile backup"),
    ('"a string"', "not a GenWatermark profile backup"),
    ('{"format": "gwm-profile-v1", "key": "AAAA"}', "no profile name"),
    ('{"format": "gwm-profile-v1", "name": 7, "key": "AAAA"}', "no profile name"),
    ('{"format": "gwm-profile-v1", "name": "x", "key": 7}', "damaged: no key"),
    ('{"format": "gwm-profile-v1", "name": "x", "key": "AAAA"}', "its key has 3 bytes"),
    ('{"format": "gwm-profile-v1", "name": "x", "key": "not base64!"}', "not base64"),
    ('{"format": "gwm-profile-v2", "name": "x", "kdf": {"name": "scrypt", "n": 1073741824, "r": 8, "p": 1, '
     '"salt": "AAAA"}, "cipher": "AES-256-GCM", "nonce": "AAAA", "ciphertext": "AAAA"}', "unreasonable"),
    ("hello", "not JSON"),
])
def test_a_malformed_backup_is_a_one_line_error(tmp_path, content, reason):
    bogus = tmp_path / "backup.json"
    bogus.write_text(content)
    with pytest.raises(ProfileError, match=reason) as caught:
        ProfileStore().import_(bogus, passphrase=PASSPHRASE)
    assert "\n" not in str(caught.value)
    assert ProfileStore().list() == []


def test_import_reads_at_most_a_small_file(tmp_path):
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (1 << 20) + b"{}")
    with pytest.raises(ProfileError, match="over 64 KiB"):
        ProfileStore().import_(huge)
    if Path("/dev/zero").exists():  # endless: a missing cap would read until memory runs out
        with pytest.raises(ProfileError, match="over 64 KiB"):
            ProfileStore().import_(Path("/dev/zero"))


@pytest.mark.parametrize("damage", [b"", b"short", bytes(33)])
def test_a_damaged_key_file_is_refused_not_used(damage):
    store = ProfileStore()
    profile = store.create("dora")
    (profile.folder / "key.bin").write_bytes(damage)
    with pytest.raises(ProfileError, match="damaged"):
        _ = store.get("dora").key


@pytest.mark.parametrize("name", ["", "../evil", "a/b", "x" * 80])
def test_bad_names_are_refused_with_a_reason(name):
    with pytest.raises(ProfileError, match="invalid profile name"):
        ProfileStore().create(name)


def test_import_of_a_non_export_is_a_clear_error(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello")
    with pytest.raises(ProfileError, match="not a GenWatermark profile backup"):
        ProfileStore().import_(bogus)
