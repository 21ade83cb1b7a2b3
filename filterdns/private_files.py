"""The data directory and the files in it are for the service's own user only.

They hold password hashes, parents' mail addresses, pupils' lookups and the keys that sign
shared links: any other local user who can read them can read those, or forge the links.
So the directory is made 0700 and the files 0600 when they are created, and a directory
made before this (0755, files 0644) is closed at start, with a warning saying what was open.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import IO

log = logging.getLogger("filterdns.service")

OTHERS = 0o077  # the group's and everyone else's permission bits


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by this user only; an existing
    ``path`` open to others is closed, with a warning."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _close_to_others(path)
    return path


def private_tree(path: Path) -> int:
    """``private_dir(path)``, then close every file and folder below it (not following
    symlinks) that others may use; returns how many were changed and warns once."""
    private_dir(path)
    closed = 0
    for entry in path.rglob("*"):
        try:
            mode = entry.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & OTHERS:
                entry.chmod(mode & 0o7700)
                closed += 1
        except FileNotFoundError:
            continue  # gone meanwhile: another worker's download renamed its part file
        except OSError as error:
            log.warning("cannot make %s private: %s", entry, error.strerror or error)
    if closed:
        log.warning("%d files and folders in %s could be read by other local users: now only by this one", closed, path)
    return closed


def private_file(path: Path) -> None:
    """Create ``path`` as an empty 0600 file if it does not exist; an existing one open to
    others is closed, with a warning."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    _close_to_others(path)


def open_private_append(path: Path) -> IO[str]:
    """``path`` opened to append text, created 0600 if new."""
    private_file(path)
    return open(path, "a", encoding="utf-8")


def _close_to_others(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & OTHERS:
        try:
            path.chmod(mode & 0o7700)
        except PermissionError as error:  # not ours to change: say so, and carry on
            log.warning("%s can be used by other local users (mode %o) and cannot be changed: %s",
                        path, mode & 0o777, error.strerror)  # fmt: skip
            return
        log.warning("%s could be used by other local users (mode %o): now only by this one", path, mode & 0o777)
