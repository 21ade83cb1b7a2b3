"""Dropping root after binding port 53.

A DNS server needs root only to bind ports below 1024. Once the sockets are open it switches
to an unprivileged user (``server.user`` / ``--user``), so a bug in list parsing or the web
console cannot be turned into control of the machine. The data directory is handed to that
user first, because the query log and the store are written after the switch. (The Docker
image does not need this: it grants CAP_NET_BIND_SERVICE to a non-root user instead.)
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
from pathlib import Path

log = logging.getLogger("filterdns.service")


class PrivilegeError(Exception):
    pass


def drop_privileges(user: str, data_dir: Path) -> None:
    """Become ``user`` (and its primary group) for good; no-op when not running as root."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"no such user '{user}'") from None
    if os.getuid() != 0:
        if os.getuid() != entry.pw_uid:
            log.warning("not running as root: cannot switch to user '%s', staying uid %d", user, os.getuid())
        return
    for path in [data_dir, *data_dir.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    os.setgroups([g.gr_gid for g in grp.getgrall() if user in g.gr_mem] + [entry.pw_gid])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise PrivilegeError("still root after setuid")
    log.info("dropped root privileges: now running as %s (uid %d)", user, entry.pw_uid)
