"""Load config.yaml into the typed ``Config``, with errors that name file, line and key.

The file holds two things: the node's own settings (``sections/node.py``: listeners,
upstreams, store, console...) and the policy (``sections/policy.py``: groups, schedules,
categories...), which the store keeps as revisions and the console edits. ``load_config``
reads both; ``config_with_policy`` puts a policy revision over a node's settings.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from pathlib import Path
from typing import Iterable

from filterdns.config import values as v
from filterdns.config.model import Config, Endpoint, NodeConfig, ServerConfig, UpstreamConfig, UpstreamServerConfig
from filterdns.config.policytext import dump_policy
from filterdns.config.sections.node import read_node
from filterdns.config.sections.policy import POLICY_KEYS, read_policy
from filterdns.config.yamlnodes import ConfigError, Context, Reader, compose_file, compose_text

log = logging.getLogger("filterdns.config")

# The most a policy document may weigh. The example school's is about 10 kB; big lists
# belong in list files, which the policy only names.
MAX_POLICY_BYTES = 1_000_000

# The policy of the embedded default: one group for everyone, bypass protection on.
EMBEDDED_POLICY = dump_policy({"groups": {"default": {"description": "Every client"}}, "default_group": "default"})


def config_with_policy(base: Config, document: str, label: str = "policy") -> Config:
    """``base`` (a node's file or the embedded default) with its policy replaced by
    ``document`` (a revision from the store or the console). Relative paths in the document
    are relative to the config file's folder. Problems are reported as ``label:LINE: key: ...``.

    A document may come from anyone with the admin role, through the API: it is refused
    before parsing when over ``MAX_POLICY_BYTES``, and when it uses YAML aliases."""
    size = len(document.encode("utf-8"))
    if size > MAX_POLICY_BYTES:
        raise ConfigError(
            [f"{label}: the policy is {size:,} bytes; the most accepted is {MAX_POLICY_BYTES:,} (long lists belong in list files)"]
        )
    root = compose_text(document, label, aliases=False)
    if not isinstance(root.value, dict):
        raise ConfigError([f"{label}:{root.line}: the policy must be a mapping of sections"])
    unknown = [(key, key_node) for key, (key_node, _) in root.value.items() if key not in POLICY_KEYS]
    if unknown:
        raise ConfigError(
            [f"{label}:{node.line}: {key}: not a policy section ({', '.join(POLICY_KEYS)})" for key, node in unknown]
        )
    ctx = Context(label)
    top = Reader(ctx, root, "")
    policy = read_policy(top, base.node.folder, base.node.list_file_roots)
    top.finish()
    ctx.check()
    return dataclasses.replace(base, policy=policy)


def read_config(path: str | Path) -> tuple[Config, list[str]]:
    """Read and validate a config file: the config and its warnings (``file:line: key: ...``,
    things that work but are probably not what was meant). Raises ``ConfigError`` with every
    problem, sorted by line, or OSError."""
    path = Path(path)
    root, base = compose_file(path), path.resolve().parent
    ctx = Context(str(path))
    top = Reader(ctx, root, "")
    node = read_node(top, base, source=path)
    policy = read_policy(top, base, node.list_file_roots)
    top.finish()
    ctx.check()
    return Config(node, policy), ctx.warnings


def load_config(path: str | Path) -> Config:
    """``read_config``, with its warnings logged."""
    config, warnings = read_config(path)
    for warning in warnings:
        log.warning("%s", warning)
    return config


def default_config(upstreams: Iterable[Endpoint] = ()) -> Config:
    """The embedded default: DNS on 127.0.0.1:5353 and [::1]:5353, forwarding to the system's
    resolvers (or to ``upstreams``), no lists, bypass protection on. Needs no root."""
    servers = tuple(UpstreamServerConfig(e) for e in upstreams) or system_resolvers()
    listen = (Endpoint("127.0.0.1", 5353),) + ((Endpoint("::1", 5353),) if _has_ipv6_loopback() else ())
    base = Config(
        NodeConfig(server=ServerConfig(listen=listen), upstream=UpstreamConfig(servers=servers), data_dir=default_data_dir())
    )
    return config_with_policy(base, EMBEDDED_POLICY, "embedded default")


def default_data_dir() -> Path:
    """The embedded default's data directory, the same whatever the working directory (so
    that `filterdns user list` run from another folder finds the server's store):
    /var/lib/filterdns as root, else $XDG_STATE_HOME/filterdns (~/.local/state/filterdns)."""
    if os.geteuid() == 0:
        return Path("/var/lib/filterdns")
    state = os.environ.get("XDG_STATE_HOME", "")
    # The XDG base directory spec: a relative path there is invalid and must be ignored.
    return (Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state") / "filterdns"


def _has_ipv6_loopback() -> bool:
    """Some containers have no ::1; the default must still start there."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def system_resolvers(resolv_conf: Path = Path("/etc/resolv.conf")) -> tuple[UpstreamServerConfig, ...]:
    """Name servers from resolv.conf, so the default works wherever the host resolves names.
    Falls back to Quad9 and Cloudflare when the file lists none."""
    servers = []
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                servers.append(UpstreamServerConfig(Endpoint(v.ip_address(parts[1].split("%")[0]), 53)))
            except ValueError:
                continue  # one bad line must not hide the name servers after it
    return tuple(servers) or (
        UpstreamServerConfig(Endpoint("9.9.9.9", 53), name="quad9"),
        UpstreamServerConfig(Endpoint("1.1.1.1", 53), name="cloudflare"),
    )
