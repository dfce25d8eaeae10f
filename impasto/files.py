"""Files read with a clear error, and written atomically: a crash never leaves a half-written model,
card or image in place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

from .errors import ImpastoError


def existing_file(path: Union[str, os.PathLike], name: str, kind: str) -> Path:
    """`path` as a Path, or an ImpastoError naming `name` when it is missing, a folder or empty."""
    p = Path(path)
    if not p.exists():
        raise ImpastoError(f"{name}: no such file")
    if p.is_dir():
        raise ImpastoError(f"{name}: is a folder, not {kind}")
    if p.stat().st_size == 0:
        raise ImpastoError(f"{name}: the file is empty")
    return p


def umask() -> int:
    """The process umask: read from /proc on Linux (setting it to read it would race with other
    threads creating files), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_through(path: Union[str, os.PathLike]) -> Path:
    """Where writing `path` lands: the target of a symlink (so `-o link.png` updates the file the
    link points to and keeps the link), else the path itself."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def atomic_write(path: Union[str, os.PathLike], data: bytes | str) -> Path:
    """Write a whole file or nothing: a hidden `.part` file next to it, fsync'd, renamed over it.

    The file gets the mode a plain open() would (0666 less the umask, not mkstemp's 0600); a
    symlink is written through; the `.part` file is removed on every failure, Ctrl-C included.
    """
    path = Path(path)
    target = write_through(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Union[str, os.PathLike], data: bytes) -> Path:
    """atomic_write for bytes (models, cards, images)."""
    return atomic_write(path, data)
