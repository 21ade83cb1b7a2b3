"""Opening the store from a command (``user``, ``roster``, ``policy export``).

A command finds the server's data directory the way ``serve`` does (the config file's
``data_dir``, else the embedded default's fixed folder), so it reaches the same store from any
working directory. When there is no store there yet, it says so before making one: an empty
store usually means the command was not given the server's ``-c`` or ``--data-dir``.
"""

from __future__ import annotations

import sys

from filterdns.config.model import Config
from filterdns.store import Store, open_store, sqlite_file


async def open_command_store(config: Config, command: str) -> Store:
    """The store ``config`` names, connected; a warning on stderr when it does not exist yet."""
    if config.node.store.backend != "postgres":
        path = sqlite_file(config.node.store, config.node.data_dir)
        if not path.exists():
            print(
                f"filterdns {command}: warning: there is no store at {path} yet; a new, empty one is made. "
                "If the server keeps its data elsewhere, give this command the server's -c (or --data-dir).",
                file=sys.stderr,
            )
    return await open_store(config.node.store, config.node.data_dir)
