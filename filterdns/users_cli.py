"""``filterdns user add|list|passwd|unlock|disable|enable``: console accounts from the server's shell.

This is how the first admin is made on a fresh install (the other way is the one-time
setup link the service logs at its first start). Passwords are typed twice at a hidden
prompt, or read from standard input with ``--password-stdin`` for scripts; they follow the
same rules as in the console and are stored only as argon2id hashes. Every change is
written to the audit log with the actor ``cli``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from pathlib import Path

from filterdns.accounts.passwords import Passwords
from filterdns.accounts.rules import ROLES, password_problems, user_name_problem
from filterdns.accounts.service import Accounts
from filterdns.command_store import open_command_store
from filterdns.config.model import Config
from filterdns.store import Conflict, Store, StoreError, User

ACTOR = "cli"


class UsageError(Exception):
    """Something the operator typed cannot be done; the message says why."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``user`` command to the ``filterdns`` parser."""
    user = commands.add_parser("user", help="manage staff console accounts")
    user.add_argument("-c", "--config", type=Path, help="config file (default: the embedded default)")
    user.add_argument("--data-dir", type=Path, help="where the store lives (overrides the config)")
    actions = user.add_subparsers(dest="user_command", required=True)

    add = actions.add_parser("add", help="create an account")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--groups", default="", help="comma-separated groups a teacher or parent may see")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    actions.add_parser("list", help="list accounts")

    passwd = actions.add_parser("passwd", help="set a new password (logs the user out everywhere, revokes API tokens)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    for name, text in (
        ("disable", "disable an account (logs it out everywhere)"),
        ("enable", "enable an account"),
        ("unlock", "lift a lockout after failed logins now, instead of waiting for it to end"),
    ):
        actions.add_parser(name, help=text).add_argument("name")


def main(args: argparse.Namespace, config: Config) -> int:
    """Run ``filterdns user ...``; returns the exit code."""
    if args.data_dir:
        config = config.with_node(data_dir=args.data_dir)
    try:
        return asyncio.run(_run(args, config))
    except UsageError as error:
        print(f"filterdns user: {error}", file=sys.stderr)
        return 2
    except StoreError as error:
        print(f"filterdns user: the store is not available: {error}", file=sys.stderr)
        return 1


def read_password(args: argparse.Namespace, name: str) -> str:
    """The new password, from stdin or typed twice, checked against the password rules."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("The same password again: ") != password:
            raise UsageError("the two passwords differ")
    problems = password_problems(password, name)
    if problems:
        raise UsageError("; ".join(problems))
    return password


async def _run(args: argparse.Namespace, config: Config) -> int:
    store = await open_command_store(config, "user")
    try:
        return await _COMMANDS[args.user_command](args, config, store)
    finally:
        await store.close()


async def _add(args: argparse.Namespace, config: Config, store: Store) -> int:
    problem = user_name_problem(args.name)
    if problem:
        raise UsageError(problem)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    known = {g.name for g in config.policy.groups} | {config.policy.default_group}
    for group in groups:
        if group not in known:
            # Groups added in the console are not in the file: warn, do not refuse.
            print(f"filterdns user: note: no group '{group}' in the config file", file=sys.stderr)
    if args.role in ("teacher", "parent") and not groups:
        print(f"filterdns user: note: a {args.role} without --groups sees nothing", file=sys.stderr)
    password_hash = await Passwords().hash(read_password(args, args.name))
    try:
        await Accounts(store).add(args.name, args.role, password_hash, groups=groups, actor=ACTOR)
    except Conflict:
        raise UsageError(f"there is a user called {args.name} already") from None
    print(f"added {args.role} {args.name}")
    return 0


async def _list(args: argparse.Namespace, config: Config, store: Store) -> int:
    now = time.time()
    for user in await store.list_users():
        state = "disabled" if user.disabled else "locked" if user.is_locked(now) else "active"
        print(f"{user.name}\t{user.role}\t{','.join(user.groups) or '-'}\t{state}")
    return 0


async def _existing(store: Store, name: str) -> User:
    user = await store.get_user(name)
    if user is None:
        raise UsageError(f"no user called {name}")
    return user


async def _passwd(args: argparse.Namespace, config: Config, store: Store) -> int:
    user = await _existing(store, args.name)
    password_hash = await Passwords().hash(read_password(args, user.name))
    await Accounts(store).set_password(user.name, password_hash, actor=ACTOR)  # also lifts a lockout
    print(f"password of {user.name} changed; their sessions were ended and their API tokens revoked")
    return 0


async def _unlock(args: argparse.Namespace, config: Config, store: Store) -> int:
    user = await _existing(store, args.name)
    await Accounts(store).unlock(user.name, actor=ACTOR)
    print(f"{user.name} unlocked" if user.is_locked(time.time()) else f"{user.name} was not locked")
    return 0


async def _set_disabled(store: Store, name: str, disabled: bool) -> int:
    user = await _existing(store, name)
    await Accounts(store).set_disabled(user.name, disabled, actor=ACTOR)
    print(f"{user.name} {'disabled' if disabled else 'enabled'}")
    return 0


async def _disable(args: argparse.Namespace, config: Config, store: Store) -> int:
    return await _set_disabled(store, args.name, True)


async def _enable(args: argparse.Namespace, config: Config, store: Store) -> int:
    return await _set_disabled(store, args.name, False)


_COMMANDS = {"add": _add, "list": _list, "passwd": _passwd, "unlock": _unlock, "disable": _disable, "enable": _enable}
