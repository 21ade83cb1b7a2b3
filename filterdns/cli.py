"""The ``filterdns`` command: serve, check-config, explain."""

from __future__ import annotations

import argparse
import os
import asyncio
import dataclasses
import ipaddress
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

from filterdns import __version__, roster_cli, users_cli
from filterdns.config.loader import ConfigError, default_config, load_config, read_config
from filterdns.config.model import Config, UpstreamServerConfig
from filterdns.config.policytext import policy_document
from filterdns.config.values import parse_endpoint, parse_mac
from filterdns.logsetup import configure_logging
from filterdns.policy.listhealth import essential_note

log = logging.getLogger("filterdns")


def _endpoint(text: str):
    try:
        return parse_endpoint(text, 53)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="filterdns", description="Content-filtering DNS resolver for schools.")
    parser.add_argument("--version", action="version", version=f"filterdns {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the DNS service")
    serve.add_argument("-c", "--config", type=Path, help="config file (default: the embedded default)")
    serve.add_argument("--listen", action="append", type=_endpoint, metavar="HOST:PORT", help="DNS address (repeatable)")
    serve.add_argument("--upstream", action="append", type=_endpoint, metavar="HOST:PORT", help="upstream resolver (repeatable)")
    serve.add_argument("--data-dir", type=Path, help="where lists, logs and the store live")
    serve.add_argument("--metrics", type=_endpoint, metavar="HOST:PORT", help="serve Prometheus metrics here")
    serve.add_argument("--web-listen", type=_endpoint, metavar="HOST:PORT", help="staff console address (default 127.0.0.1:8080)")
    serve.add_argument("--no-uvloop", action="store_true", help="use the standard asyncio event loop")
    serve.add_argument("--user", help="switch to this user after binding (when started as root)")
    serve.add_argument("--workers", type=int, metavar="N", help="worker processes sharing the ports (SO_REUSEPORT)")
    serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    check = commands.add_parser("check-config", help="validate a config file and its lists")
    check.add_argument("config", type=Path)

    explain = commands.add_parser("explain", help="show what the policy does with a name, and why")
    explain.add_argument("name")
    explain.add_argument("-c", "--config", type=Path, default=Path("config.yaml"))
    explain.add_argument("--client", help="client IP address (picks the group)")
    explain.add_argument("--mac", help="client MAC address (picks the group)")
    explain.add_argument("--group", help="group name (instead of --client/--mac)")
    explain.add_argument(
        "--where", choices=("school", "home"), default="school",
        help="at school, or on a take-home device at home over DoH/DoT (the group's home policy)",
    )
    explain.add_argument("--at", help="ISO time, e.g. 2026-11-23T10:00 (default: now, in the config's time zone)")
    users_cli.add_parser(commands)
    roster_cli.add_parser(commands)

    policy = commands.add_parser("policy", help="the policy kept as revisions in the store")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    export = policy_commands.add_parser("export", help="write the policy in force (newest revision) as YAML")
    export.add_argument("-c", "--config", type=Path, default=Path("config.yaml"))
    export.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    export.add_argument("--revision", type=int, help="a given revision instead of the newest")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run_command(args, argv)
    except _Exit as stop:
        return stop.code


def _run_command(args: argparse.Namespace, argv: list[str] | None) -> int:
    if args.command == "serve":
        return _serve(args, argv)
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "policy":
        return asyncio.run(_export_policy(args))
    if args.command == "user":
        return users_cli.main(args, _load(args.config))
    if args.command == "roster":
        return roster_cli.main(args, _load(args.config))
    return _explain(args)


class _Exit(Exception):
    """A command cannot go on; the message has been printed."""

    def __init__(self, code: int):
        self.code = code


def _load(path: Path | None) -> Config:
    """The config file (or the embedded default), or ``_Exit`` with the problems printed."""
    try:
        return default_config() if path is None else load_config(path)
    except ConfigError as error:
        print(f"filterdns: the configuration has problems:\n{error}", file=sys.stderr)
    except OSError as error:
        print(f"filterdns: cannot read the configuration: {error}", file=sys.stderr)
    raise _Exit(2)


def _without_listen(argv: list[str]) -> list[str]:
    """The command line minus --listen: the supervisor gives workers the resolved ports."""
    kept, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--listen":
            skip = True
        elif not word.startswith("--listen="):
            kept.append(word)
    return kept


def _serve(args: argparse.Namespace, argv: list[str] | None) -> int:
    # Everything the service writes (store, query log, downloaded lists) is for its own user
    # only: see filterdns.private_files.
    os.umask(0o077)
    config = apply_overrides(_load(args.config), args)
    configure_logging(args.log_level or config.node.log.level, config.node.log.format)
    if not config.node.upstream.servers:
        log.error("no upstream resolvers configured: add upstream.servers or --upstream HOST:PORT")
        return 2
    if config.node.server.workers > 1 and args.worker_index is None:
        from filterdns.server.workers import supervise

        return asyncio.run(supervise(config, _without_listen(sys.argv[1:] if argv is None else argv)))
    from filterdns.server.service import run_service  # imports the whole server stack

    def reread(path: Path) -> Config:
        """SIGHUP: the file again, with the same command-line flags on top."""
        return apply_overrides(load_config(path), args)

    if config.node.server.uvloop and not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            log.info("uvloop is not installed; using the standard asyncio event loop")
        else:
            return uvloop.run(run_service(config, reread))
    return asyncio.run(run_service(config, reread))


def apply_overrides(config: Config, args: argparse.Namespace) -> Config:
    """Command-line flags win over the config file."""
    server, upstream = config.node.server, config.node.upstream
    if args.listen:
        server = dataclasses.replace(server, listen=tuple(args.listen))
    if args.no_uvloop:
        server = dataclasses.replace(server, uvloop=False)
    if args.user:
        server = dataclasses.replace(server, user=args.user)
    if args.workers:
        server = dataclasses.replace(server, workers=args.workers)
    if args.worker_index is not None:
        server = dataclasses.replace(server, worker_index=args.worker_index)
    if args.upstream:
        upstream = dataclasses.replace(upstream, servers=tuple(UpstreamServerConfig(e) for e in args.upstream))
    changes: dict = {"server": server, "upstream": upstream}
    if args.data_dir:
        changes["data_dir"] = args.data_dir
    if args.metrics:
        changes["metrics_listen"] = args.metrics
    if args.web_listen:
        changes["web"] = dataclasses.replace(config.node.web, listen=args.web_listen)
    return config.with_node(**changes)


def _check_config(path: Path) -> int:
    """Problems (exit 1, never "OK") and warnings (exit 0, "OK, with N warnings"), each with
    the file, line and key where there is one."""
    try:
        config, warnings = read_config(path)
    except ConfigError as error:
        print(f"{path}: {len(error.problems)} problem(s):\n{error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"cannot read {path}: {error}", file=sys.stderr)
        return 1
    from filterdns.server.active_policy import build_policy

    policy = build_policy(config)
    health = policy.categories.health
    problems = []
    for status in policy.categories.statuses:
        note = ""
        if status.error:
            # A list not downloaded yet fills in once the server runs; a local file that
            # cannot be read (it changed since the config was read) leaves its category empty.
            is_url = status.location.startswith(("http://", "https://"))
            note = f"  {'WARNING' if is_url else 'ERROR'}: {status.error}"
            (warnings if is_url else problems).append(f"categories.{status.category}: {status.location}: {status.error}")
        elif status.bad_examples:
            note = f"  ({status.bad_lines} bad lines skipped, e.g. line {status.bad_examples[0][0]}: {status.bad_examples[0][1]!r})"
        elif status.bad_lines:
            note = f"  ({status.bad_lines} bad lines skipped; mostly not a list)"
        if status.url_entries:
            note += f"  ({status.url_entries} page addresses not enforceable by DNS)"
        print(f"  {status.category:<14} {status.entries:>9} domains  {status.location}{note}")
        if status.essential_blocked:
            print(f"  {'':<14} {essential_note(status.essential_blocked, health.essential_total)}: "
                  f"{', '.join(status.essential_blocked)}")
    for category, repeated in health.duplicates.items():
        if repeated:
            print(f"  {category:<14} {repeated} entries repeated across its sources")
    for first, second, shared in health.overlaps:
        print(f"  overlap: {shared} domains in both {first} and {second}")
    for warning in warnings:
        print(f"warning: {warning}")
    if problems:
        print(f"{path}: {len(problems)} problem(s):", *problems, sep="\n", file=sys.stderr)
        return 1
    verdict = f"OK, with {len(warnings)} warning{'' if len(warnings) == 1 else 's'}" if warnings else "OK"
    print(
        f"{path}: {verdict} — {len(config.policy.groups)} groups, {len(config.policy.schedules)} schedules, "
        f"{len(config.policy.categories)} categories, {len(policy.categories.index)} listed domains"
    )
    return 0


def _explain(args: argparse.Namespace) -> int:
    config = _load(args.config)
    from filterdns.server.active_policy import build_policy

    try:
        at = _parse_time(args.at, config.policy.timezone) if args.at else datetime.now(timezone.utc)
        mac = parse_mac(args.mac) if args.mac else None
        client = str(ipaddress.ip_address(args.client)) if args.client else "0.0.0.0"
    except ValueError as error:
        print(f"filterdns explain: {error}", file=sys.stderr)
        return 2
    if args.group and args.group not in {g.name for g in config.policy.groups}:
        print(f"filterdns explain: no group '{args.group}' (groups: {', '.join(g.name for g in config.policy.groups)})", file=sys.stderr)
        return 2
    configure_logging("error")  # lists not downloaded yet are not this command's news
    policy = build_policy(config)
    from filterdns.policy.home import group_at

    group = args.group or policy.identifier.group_for(client, mac)
    explanation = policy.engine.explain(args.name, group_at(group, args.where), at)
    print(explanation.render())
    return 0


def _parse_time(text: str, zone: str) -> datetime:
    from zoneinfo import ZoneInfo

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--at '{text}' is not an ISO time such as 2026-11-24T09:30") from None
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(zone))


async def _export_policy(args: argparse.Namespace) -> int:
    """The newest policy revision from the store (the file's own policy if there is none yet)."""
    from filterdns.command_store import open_command_store
    from filterdns.store import StoreError

    config = _load(args.config)
    try:
        store = await open_command_store(config, "policy export")
    except StoreError as error:
        print(f"filterdns: cannot open the store: {error}", file=sys.stderr)
        return 1
    try:
        revision = await (store.get_revision(args.revision) if args.revision else store.latest_revision())
    finally:
        await store.close()
    if revision is None:
        if args.revision:
            print(f"filterdns: no revision {args.revision}", file=sys.stderr)
            return 1
        text, header = policy_document(args.config), f"# policy from {args.config} (no revision stored yet)\n"
    else:
        when = datetime.fromtimestamp(revision.created, timezone.utc).isoformat(timespec="seconds")
        text = revision.yaml_text
        header = f"# policy revision {revision.id}, {when}, by {revision.author}: {revision.comment}\n"
    if args.output:
        args.output.write_text(header + text)
    else:
        sys.stdout.write(header + text)
    return 0
