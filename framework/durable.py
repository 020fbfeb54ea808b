"""Crash-consistent files: a kill or a power cut at any instant leaves the old file or the new one, never a torn one.

The recipe is SQLite's and every careful tool's: write to a temporary name in the same folder, flush, `fsync`
the file, `rename` it over the target (atomic within one filesystem on POSIX), then `fsync` the folder so the
rename itself survives a power cut. A directory (a checkpoint, a saved model) is built the same way: every file
in the temporary directory is fsynced, the directory renamed into place, its parent fsynced.

Checksums: `write_checksums(directory)` writes `SHA256SUMS` (`sha256  relative/path`, as `sha256sum` prints, so
`sha256sum -c SHA256SUMS` checks it too); `check_checksums(directory)` says what does not match, or None.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path

from framework.errors import UserError

CHECKSUMS = "SHA256SUMS"


class DiskFull(UserError):
    """A write ran out of space (ENOSPC): the run ends FAILED naming the path; the old file is left as it was."""

    def __init__(self, path: Path, detail: str = "") -> None:
        self.path = path
        super().__init__(f"no space left on device writing {path}{detail}; help: free some space on that disk")


def raise_if_full(exc: BaseException, path: Path) -> None:
    """Turn an ENOSPC (or EDQUOT: a quota) into DiskFull naming `path`; leave any other error alone."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        raise DiskFull(path) from exc


def fsync_path(path: Path) -> None:
    """`fsync` a file or a directory (a directory's fsync makes the names in it durable)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # some platforms (Windows) cannot open a directory: nothing more can be done there
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # a filesystem without fsync for directories
            raise
    finally:
        os.close(fd)


def fsync_tree(directory: Path) -> None:
    """`fsync` every file and folder under `directory`, deepest first, then `directory` itself."""
    for root, dirs, files in os.walk(directory, topdown=False):
        for name in files:
            fsync_path(Path(root) / name)
        for name in dirs:
            fsync_path(Path(root) / name)
    fsync_path(directory)


def write_atomic(path: Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    """Write `data` to `path` through a temporary sibling: flushed, fsynced, renamed, the folder fsynced."""
    path = Path(path)
    payload = data.encode(encoding) if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        raise_if_full(exc, path)
        raise
    fsync_path(path.parent)
    return path


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(directory: Path) -> Path:
    """Write `directory/SHA256SUMS`: the SHA-256 of every other file under `directory`, sorted by path."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != CHECKSUMS)
    lines = [f"{_digest(p)}  {p.relative_to(directory).as_posix()}\n" for p in files]
    target = directory / CHECKSUMS
    target.write_text("".join(lines), encoding="utf-8")
    return target


def check_checksums(directory: Path) -> str | None:
    """What is wrong with `directory` against its SHA256SUMS (a missing, changed or extra file), or None."""
    listing = directory / CHECKSUMS
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return f"no {CHECKSUMS}"
    except (OSError, UnicodeDecodeError) as exc:
        return f"{CHECKSUMS} unreadable ({exc})"
    expected: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            return f"{CHECKSUMS} line {number} is malformed"
        expected[name] = digest
    for name, digest in expected.items():
        try:
            actual = _digest(directory / name)
        except FileNotFoundError:
            return f"{name} is missing"
        except OSError as exc:
            return f"{name} is unreadable ({exc.strerror or exc})"
        if actual != digest:
            return f"{name} does not match its checksum"
    extra = sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name != CHECKSUMS and p.relative_to(directory).as_posix() not in expected
    )
    if extra:
        return f"{extra[0]} is not in {CHECKSUMS}"
    return None
