"""Writing user-visible files and directories so that a crash never leaves them half-written.

A write goes to a temporary name beside its target (`.<name>.tmp-<pid or random>`), then is renamed over it; a
directory being replaced is first moved aside as `.<name>.old-<pid>`. A process killed mid-write leaves those names
behind (never a torn target); `remove_leftovers` clears them once no writer can be at work (the run directory's
lock, `mmrft.run_lock`, is held).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

TEMP_RE = re.compile(r"^\.(?P<target>.+)\.tmp-[^/]+$")  # a file or directory being written
BACKUP_RE = re.compile(r"^\.(?P<target>.+)\.old-\d+$")  # a directory's previous version, moved aside


@contextlib.contextmanager
def file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that pick a format by extension work); when
    the block succeeds the file is flushed to disk and renamed over `path`: a reader sees the old file or the new
    one, never a part. On failure (disk full, permissions, an encoder error) the temporary file is removed and
    `path` is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (see `file`)."""
    with file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """`write_bytes` of `text` encoded as UTF-8."""
    return write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def directory(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside `out`; on success it replaces `out`, on error it is removed.

    An existing `out` is moved aside first and deleted only once the new one is in place, so at every moment
    either the old or the new directory exists under that name (or its backup beside it).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = None
    if out.exists():
        backup = out.with_name(f".{out.name}.old-{os.getpid()}")
        shutil.rmtree(backup, ignore_errors=True)
        os.replace(out, backup)
    os.replace(tmp, out)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def remove_leftovers(root: str | os.PathLike, skip_dirs_with: Optional[str] = None) -> list[Path]:
    """Clear what writers killed mid-write left under `root`: temporary files and directories are removed; a
    directory's previous version moved aside is put back when the new one never took its place, else removed.
    Only call it while no other process writes there. `skip_dirs_with`: do not enter a subdirectory holding a file
    of that name (another writer's own directory). Returns the paths removed or put back."""
    root, done = Path(root), []
    for here, dirs, files in os.walk(root):
        here_p = Path(here)
        if skip_dirs_with and here_p != root and skip_dirs_with in files:
            dirs[:] = []
            continue
        for name in sorted([*dirs, *files]):
            path = here_p / name
            backup = BACKUP_RE.match(name)
            if backup is None and not TEMP_RE.match(name):
                continue
            if backup is not None and path.is_dir() and not (here_p / backup["target"]).exists():
                os.replace(path, here_p / backup["target"])  # the swap was cut short: the old version is the one
            elif path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            done.append(path)
        dirs[:] = [d for d in dirs if (here_p / d).is_dir() and not TEMP_RE.match(d) and not BACKUP_RE.match(d)]
    return done
