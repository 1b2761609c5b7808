"""Files on disk: hashing while streaming, and the atomic rewrite (temporary file, fsync, rename).

Every file Lethe changes in place goes through :func:`atomic_rewrite`: the new content is written
to a temporary file in the same folder, fsynced, given the original's mode (and owner, when
allowed), and renamed over the original; then the folder is fsynced. A crash leaves the old file
or the new one, never part of one. Both the L1 log rewrite and ``lethe anonymise-log`` use it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CHUNK_SIZE = 1 << 20  # bytes read at a time; memory stays flat whatever the file size


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(path: Path) -> dict[str, int]:
    """Device, inode, size, mtime and ctime (ns): any write changes the ctime, which cannot be set back."""
    st = os.stat(path, follow_symlinks=False)
    return {
        "device": st.st_dev,
        "inode": st.st_ino,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
    }


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def unlink_quietly(path: Path) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def remove_durably(path: Path) -> None:
    """Delete ``path`` (gone already is the same outcome) and fsync its folder."""
    unlink_quietly(path)
    fsync_folder(path.parent)


class HashingReader:
    """Reads a binary file and hashes every byte read (the SHA-256 of the file as stored)."""

    def __init__(self, raw):
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data

    read1 = read

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Hash whatever the decompressor left unread, so the digest covers the whole file."""
        while self.read(CHUNK_SIZE):
            pass


class HashingWriter:
    """Writes to a binary file (or nowhere, in a dry run) and hashes every byte written."""

    def __init__(self, raw=None):
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        data = bytes(data)
        self.digest.update(data)
        self.size += len(data)
        if self.raw is not None:
            self.raw.write(data)
        return len(data)

    def flush(self) -> None:
        if self.raw is not None:
            self.raw.flush()

    def writable(self) -> bool:
        return True


class Rewrite:
    """The new version of ``target``, written to ``temp`` beside it until :meth:`replace`."""

    def __init__(self, target: Path, temp: Path | None = None):
        self.target = target
        if temp is None:
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            self.temp = Path(name)
        else:
            unlink_quietly(temp)  # left by a crashed run
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
            self.temp = temp
        self.raw = os.fdopen(fd, "wb")

    def close(self, mode: int, owner: tuple[int, int] | None = None) -> None:
        """Flush and fsync the new content, then give it ``owner`` (when allowed) and ``mode``."""
        self.raw.flush()
        os.fsync(self.raw.fileno())
        self.raw.close()
        if owner is not None:
            try:
                os.chown(self.temp, *owner)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EINVAL, errno.ENOTSUP):
                    raise  # not allowed (not root): the file gets this process's owner
        os.chmod(self.temp, mode)  # after chown, which may clear set-id bits

    def replace(self, *, sync_folder: bool = True) -> None:
        """Put the new version in place in one rename (then make the rename durable)."""
        os.replace(self.temp, self.target)
        if sync_folder:
            fsync_folder(self.target.parent)

    def discard(self) -> None:
        self.raw.close()
        unlink_quietly(self.temp)


@contextmanager
def atomic_rewrite(target: Path, temp: Path | None = None) -> Iterator[Rewrite]:
    """A :class:`Rewrite` of ``target``; on any error the temporary file is removed, the target kept.

    ``temp``: the temporary file's name (default: a fresh hidden name beside the target).
    """
    rewrite = Rewrite(target, temp)
    try:
        yield rewrite
    except BaseException:
        rewrite.discard()
        raise
