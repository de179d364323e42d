"""The key that signs cache entries: made owner-only, refused when others may use it,
shared with a lab as a new key (docs/security.md)."""

from __future__ import annotations

import grp
import os
import stat

import pytest

from daskbio.cache import FileSystemStore, ForeignEntry
from daskbio.cache.signing import KeyFileError, Signer, load_key, share_key
from tests.conftest import daskbio


def test_a_missing_key_is_made_owner_only_and_read_back_the_same(tmp_path):
    path = tmp_path / "config" / "key"
    key = load_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path) == key


@pytest.mark.parametrize(
    "mode", [0o644, 0o620, 0o602], ids=["world-readable", "group-writable", "world-writable"]
)
def test_a_key_others_may_read_or_write_is_refused(tmp_path, mode):
    path = tmp_path / "key"
    load_key(path)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match=f"may be read or written by others.*{mode:o}"):
        load_key(path)


def test_a_key_behind_a_symbolic_link_is_refused(tmp_path):
    load_key(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(KeyFileError, match="cannot read"):
        load_key(tmp_path / "link")


def test_key_share_makes_a_new_group_key_that_others_of_the_lab_use(tmp_path):
    group = grp.getgrgid(os.getgid()).gr_name
    target = tmp_path / "lab.key"
    share_key(target, group)
    st = target.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == os.getgid()
    lab = load_key(target)
    assert lab != load_key()  # not a copy of the user's own key
    with pytest.raises(KeyFileError, match="exists already"):
        share_key(target, group)
    with pytest.raises(KeyFileError, match="no group named"):
        share_key(tmp_path / "other.key", "no-such-group-here")

    # An entry one member signed with the lab key is trusted by another using it, and
    # foreign to someone using their own key.
    cache = FileSystemStore(tmp_path / "cache")
    cache.__dict__["_signer"] = Signer(lab)
    cache.save("ab" * 16, {"shared": True})
    member = FileSystemStore(tmp_path / "cache")
    member.__dict__["_signer"] = Signer(load_key(target))
    assert member.load("ab" * 16) == {"shared": True}
    with pytest.raises(ForeignEntry):
        FileSystemStore(tmp_path / "cache").metadata("ab" * 16)


def test_the_key_commands_show_where_the_key_is_and_refuse_a_bad_one(tmp_path):
    env = {**os.environ, "DASKBIO_KEY_FILE": str(tmp_path / "key")}
    shown = daskbio("key", "show", env=env, check=True).stdout
    assert f"Key file: {tmp_path / 'key'}" in shown
    assert f"Key id:   {Signer(load_key(tmp_path / 'key')).key_id}" in shown
    os.chmod(tmp_path / "key", 0o644)
    refused = daskbio("key", "show", env=env)
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: the cache signing key")
    assert "Traceback" not in refused.stderr
