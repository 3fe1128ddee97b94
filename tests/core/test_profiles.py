import json
import os
import stat

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


def test_export_import_round_trip_keeps_the_key_and_is_owner_only(tmp_path):
    store = ProfileStore()
    original = store.create("bob")
    export = tmp_path / "bob.gwmkey"
    store.export("bob", export)
    assert mode(export) == 0o600
    assert json.loads(export.read_text())["format"] == "gwm-profile-v1"
    other = ProfileStore(tmp_path / "other_home")
    restored = other.import_(export)
    assert restored.name == "bob" and restored.key == original.key


@pytest.mark.parametrize("name", ["", "../evil", "a/b", "x" * 80])
def test_bad_names_are_refused_with_a_reason(name):
    with pytest.raises(ProfileError, match="invalid profile name"):
        ProfileStore().create(name)


def test_import_of_a_non_export_is_a_clear_error(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello")
    with pytest.raises(ProfileError, match="cannot read profile export"):
        ProfileStore().import_(bogus)
