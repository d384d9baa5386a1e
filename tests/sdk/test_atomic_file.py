"""Atomic writes: whole content or the old file, ordinary permissions, no temporary left."""

from __future__ import annotations

import os

import pytest

from facecraft.sdk.atomic_file import ordinary_file_mode, write_atomic


def test_writes_bytes_and_text_with_the_ordinary_mode(tmp_path):
    p = tmp_path / "a" / "b.txt"
    write_atomic(p, "héllo\n", make_parents=True)
    assert p.read_bytes() == "héllo\n".encode()
    write_atomic(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert os.stat(p).st_mode & 0o777 == ordinary_file_mode()
    assert ordinary_file_mode() & 0o600 == 0o600
    assert sorted(x.name for x in p.parent.iterdir()) == ["b.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "keep.bin"
    write_atomic(p, b"old")
    with pytest.raises(TypeError):
        write_atomic(p, 3.5)  # not bytes or text
    assert p.read_bytes() == b"old"
    assert [x.name for x in tmp_path.iterdir()] == ["keep.bin"]
    with pytest.raises(OSError):
        write_atomic(tmp_path / "missing" / "x.bin", b"x")
