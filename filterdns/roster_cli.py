"""``filterdns roster import FILE``: load the pupil roster from the server's shell.

The file is checked against the groups of the policy in force (the newest revision in the
store, or the config file's own policy before the first), written atomically to
``identity.roster``, and recorded in the audit log with the actor ``cli``. A running service
picks the new roster up within a few seconds; nothing needs restarting.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from filterdns.command_store import open_command_store
from filterdns.config.loader import ConfigError, config_with_policy
from filterdns.config.model import Config
from filterdns.identity.roster import RosterError, parse_roster, save_roster
from filterdns.store import StoreError

ACTOR = "cli"


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``roster`` command to the ``filterdns`` parser."""
    roster = commands.add_parser("roster", help="the pupil roster that names DoH and DoT clients")
    roster.add_argument("-c", "--config", type=Path, help="config file (default: the embedded default)")
    actions = roster.add_subparsers(dest="roster_command", required=True)
    load = actions.add_parser("import", help="replace the roster with a CSV file")
    load.add_argument("file", type=Path, help="CSV with columns pupil_id, display_name, group, email, device_ids")
    load.add_argument("--check", action="store_true", help="only check the file; change nothing")


def main(args: argparse.Namespace, config: Config) -> int:
    """Run ``filterdns roster import``; returns the exit code."""
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        print(f"filterdns roster: cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_import(args, config, text))
    except StoreError as error:
        print(f"filterdns roster: the store is not available: {error}", file=sys.stderr)
        return 1


async def _import(args: argparse.Namespace, config: Config, text: str) -> int:
    store = await open_command_store(config, "roster")
    try:
        revision = await store.latest_revision()
        if revision is not None:
            try:
                config = config_with_policy(config, revision.yaml_text, f"revision {revision.id}")
            except ConfigError:
                pass  # the service would not run this revision either; check against the file
        try:
            entries = parse_roster(text, {group.name for group in config.policy.groups})
        except RosterError as error:
            print(f"filterdns roster: {args.file} cannot be used:\n{error}", file=sys.stderr)
            return 2
        if args.check:
            print(f"{args.file}: {len(entries)} entries, all usable")
            return 0
        save_roster(config.node.roster_path, entries)
        await store.audit(ACTOR, "roster.import", str(args.file), {"entries": len(entries)})
    finally:
        await store.close()
    print(f"roster: {len(entries)} entries saved to {config.node.roster_path}; a running service uses them within seconds")
    return 0
