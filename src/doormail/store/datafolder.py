"""The data folder's privacy (SPEC section 1): it is created 0700 and every file in it 0600,
whatever the umask, because the database holds the SMTP password and private keys; an older
installation with looser modes is made private at start, saying once in the log what changed."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["FILE_MODE", "FOLDER_MODE", "create_private_file", "make_private"]

FOLDER_MODE = 0o700
FILE_MODE = 0o600
# How many changed paths the log line names before it only counts the rest.
_NAMED = 12

log = logging.getLogger("doormail.datafolder")


def make_private(data_dir: Path) -> None:
    """Create `data_dir` if it is missing, then give it and every folder in it FOLDER_MODE and
    every file FILE_MODE; one warning lists what had other modes. Symbolic links and what they
    point to are left alone."""
    data_dir.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    changed: list[str] = []
    for path in [data_dir, *sorted(data_dir.rglob("*"))]:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:  # removed meanwhile (a temporary file)
            continue
        if stat.S_ISDIR(mode):
            wanted = FOLDER_MODE
        elif stat.S_ISREG(mode):
            wanted = FILE_MODE
        else:
            continue
        if stat.S_IMODE(mode) != wanted:
            name = "the folder" if path == data_dir else str(path.relative_to(data_dir))
            try:
                path.chmod(wanted)
            except OSError as error:
                changed.append(f"{name} {stat.S_IMODE(mode):04o} (not changed: {error})")
            else:
                changed.append(f"{name} {stat.S_IMODE(mode):04o} → {wanted:04o}")
    if changed:
        more = f", and {len(changed) - _NAMED} more" if len(changed) > _NAMED else ""
        log.warning(
            "data folder %s made private (it holds passwords and private keys): %s%s",
            data_dir.resolve(),
            ", ".join(changed[:_NAMED]),
            more,
        )


def create_private_file(path: Path) -> None:
    """Create `path` empty with FILE_MODE unless it exists, so that what opens it next (SQLite,
    which gives its -wal and -shm files the database's mode) does not create it by the umask."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(descriptor)
