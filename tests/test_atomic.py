import pytest

from mmrft import atomic


def test_directory_replaces_old_only_on_success(tmp_path):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "weights").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.directory(out) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("disk full")
    assert (out / "weights").read_text() == "old"  # the failed write left the previous checkpoint intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # and no temporary directory behind
    with atomic.directory(out) as tmp:
        (tmp / "weights").write_text("new")
    assert (out / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_write_text(tmp_path):
    p = atomic.write_text(tmp_path / "a.json", "{}")
    assert p.read_text() == "{}" and [x.name for x in tmp_path.iterdir()] == ["a.json"]
