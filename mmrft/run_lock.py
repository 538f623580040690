"""One writer per run directory: `RunLock`, held by `mmrft train`, `mmrft sft` and `mmrft eval --out` for the whole
run (under torchrun by rank 0 alone), taken before anything is written there.

The lock is `RUN/.lock`: an OS advisory lock on it (`fcntl.lockf`, a POSIX record lock: the kernel drops it when the
holding process dies, however it dies; it is not inherited by forked children, so a reward worker outliving a
killed trainer does not keep it) plus a JSON record of the holder (host, PID, start time, command, and a heartbeat
refreshed every `HEARTBEAT_S` seconds) so that a refused run can name it.

- Held by a live process: refused with a `RunLockError` naming the holder.
- Left by a process that died (the OS lock is free and the record names this host): taken over, with a warning
  naming the old holder.
- The record names another host (a shared filesystem): the OS lock may not reach across hosts, so the record
  decides: taken over (with a warning) when its heartbeat is older than `MMRFT_LOCK_STALE_S` seconds (300), or
  when `MMRFT_FORCE_LOCK=1`; refused otherwise.
- A filesystem without locks: the record decides on this host too (a live PID refuses).

Once held, the directory has one writer, so the temporary files and directories that a killed writer left there
(`mmrft.atomic.remove_leftovers`) are cleared. On release (the `with` block's end, also on an exception) the file is
removed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from mmrft import atomic
from mmrft.errors import MmrftError

log = logging.getLogger("mmrft")

LOCK_FILE = ".lock"
FORCE_ENV = "MMRFT_FORCE_LOCK"
STALE_ENV = "MMRFT_LOCK_STALE_S"
HEARTBEAT_S = 30.0
STALE_S = 300.0
NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}  # lockf on a filesystem that has no locks

_held: dict[str, "RunLock"] = {}  # resolved directory -> this process's lock on it (POSIX locks let a process
# take its own lock twice, and closing any descriptor of the file would drop it: this process checks itself)


class RunLockError(MmrftError):
    """The run directory is in use by another run (or its lock cannot be taken)."""


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a process on its own (torchrun's RANK variable, set before any process group)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def describe(holder: dict[str, Any]) -> str:
    """`host <h>, PID <p>, started <t>: <command>` of a lock record."""
    out = f"host {holder.get('host', '?')}, PID {holder.get('pid', '?')}, started {holder.get('started', '?')}"
    return out + (f": {holder['command']}" if holder.get("command") else "")


def _read(fd: int) -> Optional[dict[str, Any]]:
    """The record in the lock file (None: empty or unreadable)."""
    try:
        data = os.pread(fd, 1 << 16, 0)
        record = json.loads(data.decode("utf-8")) if data.strip() else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) runs no more
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class RunLock:
    """`with RunLock(run_dir):` holds `run_dir/.lock` (see the module docstring). `enabled` False (default: a torchrun
    rank other than 0) makes it do nothing. `what`: what holds it, for the messages (train, sft, eval)."""

    def __init__(self, run_dir: str | os.PathLike, what: str = "run", enabled: Optional[bool] = None,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.what = what
        self.enabled = is_main_process() if enabled is None else enabled
        self.heartbeat_s = heartbeat_s
        self.record: Optional[dict[str, Any]] = None
        self._fd: Optional[int] = None
        self._os_lock = True  # False on a filesystem without locks
        self._key = ""
        self._stop = threading.Event()
        self._beat: Optional[threading.Thread] = None

    # -- taking and giving back ------------------------------------------------------------------------------------

    def acquire(self) -> "RunLock":
        if not self.enabled or self._fd is not None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._key = str(self.run_dir.resolve())
        if self._key in _held:
            raise RunLockError(f"{self.run_dir} is in use by this process already ({_held[self._key].what}); "
                               "give each run its own directory")
        fd = self._lock_file()
        try:
            previous, argv = _read(fd), sys.argv or ["python"]
            if previous and previous.get("pid") is not None:
                self._check_previous(previous)
            self.record = {"host": socket.gethostname(), "pid": os.getpid(),
                           "started": datetime.now().astimezone().isoformat(timespec="seconds"),
                           "command": " ".join([os.path.basename(argv[0] or "python"), *argv[1:]]),
                           "what": self.what, "heartbeat": time.time()}
            try:
                self._write(fd)
            except OSError as e:
                raise RunLockError(f"cannot write {self.path}: {e.strerror or e}") from None
        except BaseException:
            os.close(fd)  # drops the OS lock; the file stays for its owner (or the next run)
            raise
        self._fd = fd
        _held[self._key] = self
        try:
            removed = atomic.remove_leftovers(self.run_dir, skip_dirs_with=LOCK_FILE)
            if removed:
                log.info("%s: cleared %d leftover(s) of interrupted writes: %s", self.run_dir, len(removed),
                         ", ".join(str(p.relative_to(self.run_dir)) for p in removed[:5]))
            if self.heartbeat_s > 0:
                self._stop.clear()
                self._beat = threading.Thread(target=self._heartbeat, name="mmrft-run-lock", daemon=True)
                self._beat.start()
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        fd, self._fd = self._fd, None
        _held.pop(self._key, None)
        try:
            if self._same_file(fd):  # removed while still held: the next run finds no record to judge
                self.path.unlink()
        finally:
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # -- the parts -------------------------------------------------------------------------------------------------

    def _lock_file(self) -> int:
        """A descriptor of RUN/.lock holding its OS lock, or a RunLockError naming the live holder."""
        for _ in range(50):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in NO_LOCKS:  # a filesystem without locks: the record alone decides
                    log.warning("%s: the filesystem does not support locks (%s); relying on the lock record",
                                self.path, e.strerror or e)
                    self._os_lock = False
                    return fd
                holder = _read(fd)
                for _ in range(20):  # the holder may have the lock but not yet its record written
                    if holder:
                        break
                    time.sleep(0.05)
                    holder = _read(fd)
                os.close(fd)
                if e.errno not in (errno.EACCES, errno.EAGAIN):
                    raise RunLockError(f"cannot lock {self.path}: {e.strerror or e}") from None
                raise RunLockError(self._busy(holder)) from None
            if self._same_file(fd):
                return fd
            os.close(fd)  # its holder removed the file on release after we opened it: lock the new one
        raise RunLockError(f"cannot lock {self.path}: it keeps being replaced")

    def _same_file(self, fd: int) -> bool:
        try:
            a, b = os.fstat(fd), os.stat(self.path)
        except FileNotFoundError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def _check_previous(self, previous: dict[str, Any]) -> None:
        """The OS lock was free but a record is there: a run that ended without releasing it (killed), or one on
        another host whose lock this host cannot see."""
        here = socket.gethostname()
        if previous.get("host") == here:
            pid = previous.get("pid")
            alive = isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid)
            if alive and not self._os_lock:
                raise RunLockError(self._busy(previous))
            state = "no longer holds it" if alive else "no longer runs"
            log.warning("%s: taking over the lock of an interrupted run (%s; that process %s)", self.run_dir,
                        describe(previous), state)
            return
        age = time.time() - float(previous.get("heartbeat") or 0)
        stale = float(os.environ.get(STALE_ENV) or STALE_S)
        forced = os.environ.get(FORCE_ENV, "") not in ("", "0")
        if age > stale or forced:
            log.warning("%s: taking over the lock of a run on another host (%s; %s)", self.run_dir,
                        describe(previous), f"{FORCE_ENV} is set" if forced and age <= stale
                        else f"no heartbeat for {age:.0f} s")
            return
        raise RunLockError(
            f"{self.run_dir} is in use by a run on another host ({describe(previous)}; last heartbeat {age:.0f} s "
            f"ago). Wait for it to end, use another directory, or, if it is not running any more, remove "
            f"{self.path} or set {FORCE_ENV}=1 (a record older than {stale:.0f} s, {STALE_ENV}, is taken over "
            "by itself)")

    def _busy(self, holder: Optional[dict[str, Any]]) -> str:
        who = describe(holder) if holder else "a process that has not written its record yet"
        what = f"another {holder.get('what', 'run')}" if holder else "another run"
        return (f"{self.run_dir} is in use by {what} ({who}). Two writers would mix their checkpoints and metrics: "
                "wait for it to end (or stop it), or choose another directory. If that process is gone, its lock is "
                "taken over by the next run by itself")

    def _write(self, fd: int) -> None:
        data = (json.dumps(self.record) + "\n").encode("utf-8")
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        os.fsync(fd)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            fd = self._fd
            if fd is None or self.record is None:
                return
            self.record["heartbeat"] = time.time()
            try:
                self._write(fd)
            except OSError as e:  # a full disk must not end the run; the record only ages
                log.debug("run lock heartbeat: %s", e)


__all__ = ["RunLock", "RunLockError", "LOCK_FILE", "describe", "is_main_process"]
