"""Load config.yaml into the typed ``Config``, with errors that name file, line and key.

PyYAML's node tree keeps a line number for every key; we walk it ourselves instead of
``yaml.safe_load`` so that a mistake deep inside ``groups.year7.rules[1].during`` is reported
as ``config.yaml:57: groups.year7.rules[1].during: unknown schedule 'lunchtime'``. All errors
are collected, not just the first, so an admin fixes a file in one pass.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
import socket
import zoneinfo
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from filterdns.config import model
from filterdns.config.model import (
    WEEKDAYS,
    AlertRule,
    BlockingConfig,
    CacheConfig,
    CategoryConfig,
    Config,
    Endpoint,
    GroupConfig,
    ListsConfig,
    LogConfig,
    MailConfig,
    RateLimitConfig,
    RecorderConfig,
    ReportsConfig,
    SafeSearchConfig,
    ScheduleConfig,
    ScheduledRule,
    ScheduleException,
    ServerConfig,
    SourceConfig,
    StoreConfig,
    UpstreamConfig,
    UpstreamServerConfig,
    WebConfig,
    WebSettings,
)
from filterdns.names import domain_name


class ConfigError(Exception):
    """One or more problems in a config file; ``str()`` lists them one per line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(slots=True)
class _Node:
    """A YAML value with the line it started on (1-based)."""

    value: Any
    line: int


@dataclass
class _Context:
    """Collects problems while the tree is converted; every check goes through ``fail``."""

    file: str
    problems: list[str] = field(default_factory=list)

    def fail(self, node: _Node | None, path: str, message: str) -> None:
        where = f"{self.file}:{node.line}" if node is not None else self.file
        self.problems.append(f"{where}: {path}: {message}" if path else f"{where}: {message}")


# libyaml's parser when PyYAML was built with it (several times faster); same nodes and marks.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _scalar(node: yaml.Node) -> Any:
    """The value of a scalar node as ``yaml.safe_load`` would give it (the composer has
    already resolved its tag: int, bool, timestamp...)."""
    return yaml.constructor.SafeConstructor().construct_object(node)


def _to_nodes(node: yaml.Node) -> _Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        mapping: dict[str, tuple[_Node, _Node]] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            mapping[str(key)] = (_Node(key, key_node.start_mark.line + 1), _to_nodes(value_node))
        return _Node(mapping, line)
    if isinstance(node, yaml.SequenceNode):
        return _Node([_to_nodes(item) for item in node.value], line)
    return _Node(_scalar(node), line)


# --------------------------------------------------------------------------- value parsers
# Each parser takes the raw YAML value and returns the typed value or raises ValueError with
# a message meant for a person; ``_Reader`` turns that into a located problem.

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``"500ms"``, ``"10s"``, ``"5m"``, ``"24h"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s, 5m or 24h")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"'{value}' is not a duration (use e.g. 500ms, 10s, 5m, 24h, 7d)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_endpoint(value: Any, default_port: int | None = None) -> Endpoint:
    """``host:port``, ``[v6]:port``; a bare host takes ``default_port`` when one is given."""
    text = str(value).strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not port_text:
        if default_port is None:
            raise ValueError(f"'{text}' needs a port, e.g. 127.0.0.1:5353 or [::1]:5353")
        port_text = str(default_port)
    if not host:
        raise ValueError(f"'{text}' has no host")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"'{port_text}' is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    return Endpoint(host, port)


def parse_network(value: Any) -> model.IPNetwork:
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        raise ValueError(f"'{value}' is not an IP address or CIDR network") from None


def parse_mac(value: Any) -> str:
    hexdigits = re.sub(r"[^0-9a-fA-F]", "", str(value))
    if len(hexdigits) != 12 or not re.fullmatch(r"[0-9a-fA-F:.\-]+", str(value)):
        raise ValueError(f"'{value}' is not a MAC address such as aa:bb:cc:dd:ee:ff")
    return ":".join(hexdigits[i : i + 2] for i in range(0, 12, 2)).lower()


def parse_timezone(value: Any) -> str:
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{value}' is not an IANA time zone such as Europe/London") from None
    return str(value)


_CLOCK = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


def parse_window(value: Any) -> tuple[str, str]:
    """``"08:45-10:15"`` -> ``("08:45", "10:15")``; ``24:00`` is allowed as an end."""
    parts = str(value).replace(" ", "").split("-")
    if len(parts) != 2 or not all(_CLOCK.match(p) for p in parts):
        raise ValueError(f"'{value}' is not a time window such as 08:45-10:15")
    start, end = (f"{int(p.split(':')[0]):02d}:{p.split(':')[1]}" for p in parts)
    if start.startswith("24"):
        raise ValueError(f"'{value}': a window cannot start at 24:00")
    if start == end:
        raise ValueError(f"'{value}': a window needs a different start and end")
    return start, end


def parse_weekdays(value: Any) -> tuple[str, ...]:
    """``mon``, ``mon-fri``, ``sat,sun``, ``daily`` -> weekday keys."""
    text = str(value).strip().lower()
    if text in ("daily", "every day", "all"):
        return WEEKDAYS
    days: list[str] = []
    for part in text.split(","):
        part = part.strip()
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"'{value}' is not a day or range of days (mon, mon-fri, sat,sun)")
        i, j = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        days.extend(WEEKDAYS[i : j + 1] if i <= j else WEEKDAYS[i:] + WEEKDAYS[: j + 1])
    return tuple(days)


def parse_date_range(value: Any) -> tuple[str, str]:
    """``2026-12-19`` or ``2026-12-19..2027-01-04`` -> ISO start and end (inclusive)."""
    text = str(value).strip()
    start_text, _, end_text = text.partition("..")
    try:
        start = date.fromisoformat(start_text.strip())
        end = date.fromisoformat(end_text.strip()) if end_text else start
    except ValueError:
        raise ValueError(f"'{value}' is not a date or range such as 2026-12-19..2027-01-04") from None
    if end < start:
        raise ValueError(f"'{value}': the range ends before it starts")
    return start.isoformat(), end.isoformat()


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if str(value) not in allowed:
            raise ValueError(f"'{value}' is not one of: {', '.join(allowed)}")
        return str(value)

    return parse


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"'{value}' is not a number of 0 or more")
    return float(value)


def _at_least_one(value: Any) -> int:
    """Sizes and counts where 0 would break or mean nothing useful (a queue of 0, 0 workers)."""
    number = _positive_int(value)
    if number < 1:
        raise ValueError(f"'{value}' must be at least 1")
    return number


def _refresh_interval(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds < 60:
        raise ValueError(f"'{value}': refreshing lists more often than once a minute only loads their servers")
    return seconds


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"'{value}' is not a whole number of 0 or more")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"'{value}' is not true or false")
    return value


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        raise ValueError("expected a text value")
    return str(value)


# --------------------------------------------------------------------------- tree reader


class _Reader:
    """Reads one mapping of the tree: known keys, typed values, located errors."""

    def __init__(self, ctx: _Context, node: _Node, path: str):
        self.ctx, self.node, self.path = ctx, node, path
        self.entries: dict[str, tuple[_Node, _Node]] = node.value if isinstance(node.value, dict) else {}
        if not isinstance(node.value, dict) and node.value is not None:
            ctx.fail(node, path, "expected a mapping of keys to values")
        self.used: set[str] = set()

    def child_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, parse: Callable[[Any], Any], default: Any) -> Any:
        self.used.add(key)
        if key not in self.entries:
            return default
        node = self.entries[key][1]
        if node.value is None:
            return default
        try:
            return parse(_plain(node))
        except ValueError as error:
            self.ctx.fail(node, self.child_path(key), str(error))
            return default

    def get_list(self, key: str, parse: Callable[[Any], Any]) -> tuple[Any, ...]:
        """A list of scalars (a single scalar is accepted as a one-item list)."""
        self.used.add(key)
        if key not in self.entries or self.entries[key][1].value is None:
            return ()
        node = self.entries[key][1]
        items = node.value if isinstance(node.value, list) else [node]
        result = []
        for i, item in enumerate(items):
            try:
                result.append(parse(_plain(item)))
            except ValueError as error:
                self.ctx.fail(item, f"{self.child_path(key)}[{i}]", str(error))
        return tuple(result)

    def node_of(self, key: str) -> _Node | None:
        self.used.add(key)
        entry = self.entries.get(key)
        return entry[1] if entry and entry[1].value is not None else None

    def sub(self, key: str) -> "_Reader":
        node = self.node_of(key) or _Node({}, self.node.line)
        return _Reader(self.ctx, node, self.child_path(key))

    def finish(self) -> None:
        """Report keys nobody asked for: almost always a typo."""
        for key, (key_node, _) in self.entries.items():
            if key not in self.used:
                hint = difflib.get_close_matches(key, sorted(self.used), n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
                self.ctx.fail(key_node, self.child_path(key), f"unknown key{suggestion}")


def _plain(node: _Node) -> Any:
    """The Python value of a node, without line bookkeeping."""
    if isinstance(node.value, dict):
        return {k: _plain(v) for k, (_, v) in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(item) for item in node.value]
    return node.value


def _read_dataclass(reader: _Reader, cls: type, parsers: dict[str, Callable[[Any], Any]]) -> Any:
    """Fill a flat config dataclass whose every field has a parser; unknown keys reported."""
    defaults = cls()
    values = {f.name: reader.get(f.name, parsers[f.name], getattr(defaults, f.name)) for f in fields(cls) if f.name in parsers}
    reader.finish()
    return cls(**values)


# --------------------------------------------------------------------------- sections


def _read_server(reader: _Reader) -> ServerConfig:
    defaults = ServerConfig()
    listen = reader.get_list("listen", parse_endpoint) or defaults.listen
    rate_limit = _read_dataclass(
        reader.sub("rate_limit"),
        RateLimitConfig,
        {"queries_per_second": _positive_number, "burst": _positive_int, "slip": _positive_int},
    )
    values = {
        "allow_networks": reader.get_list("allow_networks", parse_network) or defaults.allow_networks,
        "rate_limit": rate_limit,
        "tcp_idle_timeout": reader.get("tcp_idle_timeout", parse_duration, 10.0),
        "tcp_max_connections": reader.get("tcp_max_connections", _positive_int, 1000),
        "tcp_max_per_client": reader.get("tcp_max_per_client", _at_least_one, 50),
        "any_queries": reader.get("any_queries", _choice("minimal", "refuse"), "minimal"),
        "max_pending_upstream": reader.get("max_pending_upstream", _positive_int, 10000),
        "udp_receive_buffer": reader.get("udp_receive_buffer", _positive_int, 4 * 1024 * 1024),
        "uvloop": reader.get("uvloop", _boolean, True),
        "workers": reader.get("workers", _at_least_one, 1),
        "user": reader.get("user", _text, None),
    }
    reader.finish()
    return ServerConfig(listen=listen, **values)


def _read_upstream(ctx: _Context, reader: _Reader) -> UpstreamConfig:
    servers = []
    servers_node = reader.node_of("servers")
    items = servers_node.value if servers_node and isinstance(servers_node.value, list) else []
    if servers_node and not isinstance(servers_node.value, list):
        ctx.fail(servers_node, reader.child_path("servers"), "expected a list of upstream servers")
    for i, item in enumerate(items):
        path = f"{reader.child_path('servers')}[{i}]"
        if isinstance(item.value, dict):
            sub = _Reader(ctx, item, path)
            address = sub.get("address", lambda v: parse_endpoint(v, 53), None)
            protocol = sub.get("protocol", _choice("udp", "tcp"), "udp")
            name = sub.get("name", _text, "")
            sub.finish()
            if address is None:
                ctx.fail(item, path, "an upstream needs an address")
                continue
            servers.append(UpstreamServerConfig(address, protocol, name))
        else:
            try:
                servers.append(UpstreamServerConfig(parse_endpoint(item.value, 53)))
            except ValueError as error:
                ctx.fail(item, path, str(error))
    values = {
        "timeout": reader.get("timeout", parse_duration, 2.0),
        "failure_threshold": reader.get("failure_threshold", _positive_int, 3),
        "retry_after": reader.get("retry_after", parse_duration, 5.0),
    }
    reader.finish()
    return UpstreamConfig(servers=tuple(servers), **values)


def _read_sources(ctx: _Context, node: _Node | None, path: str, base: Path) -> tuple[SourceConfig, ...]:
    if node is None:
        return ()
    items = node.value if isinstance(node.value, list) else [node]
    sources = []
    formats = ("auto", "domains", "hosts", "adblock", "wildcard", "dnsmasq")
    for i, item in enumerate(items):
        item_path = f"{path}[{i}]"
        if isinstance(item.value, dict):
            sub = _Reader(ctx, item, item_path)
            url = sub.get("url", _text, None)
            file = sub.get("file", _text, None)
            fmt = sub.get("format", _choice(*formats), "auto")
            sub.finish()
            if (url is None) == (file is None):
                ctx.fail(item, item_path, "a source needs exactly one of 'url' or 'file'")
                continue
            location = url if url is not None else str(base / file)
        elif isinstance(item.value, str):
            location, fmt = item.value, "auto"
            if not location.startswith(("http://", "https://")):
                location = str(base / location)
        else:
            ctx.fail(item, item_path, "expected a file path, a URL, or {url|file, format}")
            continue
        sources.append(SourceConfig(location, fmt))
    return tuple(sources)


def _read_categories(ctx: _Context, node: _Node | None, path: str, base: Path) -> dict[str, CategoryConfig]:
    categories: dict[str, CategoryConfig] = {}
    if node is None:
        return categories
    if not isinstance(node.value, dict):
        ctx.fail(node, path, "expected a mapping of category names to their definitions")
        return categories
    for name, (_, cat_node) in node.value.items():
        reader = _Reader(ctx, cat_node, f"{path}.{name}")
        description = reader.get("description", _text, "")
        sources = _read_sources(ctx, reader.node_of("sources"), reader.child_path("sources"), base)
        domains = reader.get_list("domains", _text)
        reader.finish()
        categories[name] = CategoryConfig(name, description, sources, domains)
    return categories


def _read_catalogue(ctx: _Context, reader: _Reader, base: Path) -> dict[str, CategoryConfig]:
    """Categories from the file named by ``catalogue:`` (its paths relative to that file)."""
    catalogue_name = reader.get("catalogue", _text, None)
    if catalogue_name is None:
        return {}
    path = (base / catalogue_name).resolve()
    try:
        root = _compose(path)
    except (OSError, yaml.YAMLError) as error:
        ctx.fail(reader.node_of("catalogue"), "catalogue", f"cannot read {path}: {error}")
        return {}
    sub_ctx = _Context(str(path))
    catalogue_reader = _Reader(sub_ctx, root, "")
    categories = _read_categories(sub_ctx, catalogue_reader.node_of("categories"), "categories", path.parent)
    catalogue_reader.finish()
    ctx.problems.extend(sub_ctx.problems)
    return categories


def _read_schedules(ctx: _Context, node: _Node | None, default_zone: str) -> dict[str, ScheduleConfig]:
    schedules: dict[str, ScheduleConfig] = {}
    if node is None:
        return schedules
    if not isinstance(node.value, dict):
        ctx.fail(node, "schedules", "expected a mapping of schedule names to definitions")
        return schedules
    for name, (_, sched_node) in node.value.items():
        reader = _Reader(ctx, sched_node, f"schedules.{name}")
        zone = reader.get("timezone", parse_timezone, default_zone)
        weekly: dict[str, tuple[tuple[str, str], ...]] = {}
        weekly_reader = reader.sub("weekly")
        for days_text, (key_node, _) in weekly_reader.entries.items():
            try:
                days = parse_weekdays(days_text)
            except ValueError as error:
                ctx.fail(key_node, weekly_reader.child_path(days_text), str(error))
                continue
            windows = weekly_reader.get_list(days_text, parse_window)
            for day in days:
                weekly[day] = weekly.get(day, ()) + windows
        exceptions = []
        exceptions_node = reader.node_of("exceptions")
        for i, item in enumerate(exceptions_node.value if exceptions_node and isinstance(exceptions_node.value, list) else []):
            sub = _Reader(ctx, item, f"schedules.{name}.exceptions[{i}]")
            label = sub.get("name", _text, "")
            dates = sub.get("dates", parse_date_range, None)
            windows = sub.get_list("windows", parse_window)
            sub.finish()
            if sub.node_of("dates") is None:
                ctx.fail(item, sub.path, "an exception needs 'dates' (2026-12-19 or 2026-12-19..2027-01-04)")
                continue
            if dates is None:
                continue  # already reported where the dates are
            exceptions.append(ScheduleException(label or dates[0], dates[0], dates[1], windows))
        reader.finish()
        schedules[name] = ScheduleConfig(name, zone, weekly, tuple(exceptions))
    return schedules


def _read_groups(
    ctx: _Context, node: _Node | None, categories: dict[str, CategoryConfig], schedules: dict[str, ScheduleConfig]
) -> list[GroupConfig]:
    groups: list[GroupConfig] = []
    if node is None:
        return groups
    if not isinstance(node.value, dict):
        ctx.fail(node, "groups", "expected a mapping of group names to definitions")
        return groups

    def category(value: Any) -> str:
        if str(value) not in categories:
            hint = difflib.get_close_matches(str(value), list(categories), n=1)
            raise ValueError(f"unknown category '{value}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
        return str(value)

    def schedule(value: Any) -> str:
        if str(value) not in schedules:
            raise ValueError(f"unknown schedule '{value}' (schedules: {', '.join(schedules) or 'none defined'})")
        return str(value)

    for name, (_, group_node) in node.value.items():
        reader = _Reader(ctx, group_node, f"groups.{name}")
        rules = []
        rules_node = reader.node_of("rules")
        for i, item in enumerate(rules_node.value if rules_node and isinstance(rules_node.value, list) else []):
            sub = _Reader(ctx, item, f"groups.{name}.rules[{i}]")
            during = sub.get("during", schedule, None)
            block = sub.get_list("block", category)
            allow = sub.get_list("allow", category)
            sub.finish()
            if sub.node_of("during") is None:
                ctx.fail(item, sub.path, "a rule needs 'during: <schedule name>'")
            elif sub.node_of("block") is None and sub.node_of("allow") is None:
                ctx.fail(item, sub.path, "a rule needs categories to 'block' or 'allow'")
            elif during is not None and (block or allow):
                rules.append(ScheduledRule(during, block, allow))
        safe_reader = reader.sub("safe_search")
        safe_search = SafeSearchConfig(
            search=safe_reader.get("search", _boolean, False),
            youtube=safe_reader.get("youtube", _youtube_mode, "off"),
        )
        safe_reader.finish()
        groups.append(
            GroupConfig(
                name=name,
                description=reader.get("description", _text, ""),
                networks=reader.get_list("networks", parse_network),
                macs=reader.get_list("macs", parse_mac),
                block=reader.get_list("block", category),
                rules=tuple(rules),
                allow_domains=reader.get_list("allow", _domain),
                deny_domains=reader.get_list("deny", _domain),
                safe_search=safe_search,
                block_mode=reader.get("block_mode", _block_mode, None),
                bypass_protection=reader.get("bypass_protection", _boolean, True),
                site=reader.get("site", _text, ""),
            )
        )
        reader.finish()
    return groups


def _read_store(ctx: _Context, reader: _Reader) -> StoreConfig:
    """``store: {backend, path, dsn, node, retention: {raw_events, aggregates, audit}, buffer_limit}``."""
    defaults = StoreConfig()
    retention = reader.sub("retention")
    values = {
        "backend": reader.get("backend", _choice("sqlite", "postgres"), defaults.backend),
        "path": reader.get("path", lambda v: Path(str(v)), None),
        "dsn": reader.get("dsn", _text, ""),
        "node": reader.get("node", _text, ""),
        "buffer_limit": reader.get("buffer_limit", _positive_int, defaults.buffer_limit),
        "raw_events_days": retention.get("raw_events", _whole_days, defaults.raw_events_days),
        "aggregates_days": retention.get("aggregates", _whole_days, defaults.aggregates_days),
        "audit_days": retention.get("audit", _whole_days, defaults.audit_days),
    }
    retention.finish()
    reader.finish()
    try:
        return StoreConfig(**values)
    except ValueError as error:
        ctx.fail(reader.node, "store", str(error))
        return defaults


def _read_web(reader: _Reader, base: Path) -> WebConfig:
    """``web: {listen, tls_cert, tls_key, blockpage_listen, session_hours, idle_minutes, ...}``."""
    defaults = WebConfig()
    listen_node = reader.node_of("listen")
    in_file = "listen" in reader.entries
    listen = reader.get("listen", parse_endpoint, None) if listen_node else (None if in_file else defaults.listen)
    values = {
        "listen": listen,
        "tls_cert": reader.get("tls_cert", lambda v: base / str(v), None),
        "tls_key": reader.get("tls_key", lambda v: base / str(v), None),
        "blockpage_listen": reader.get("blockpage_listen", parse_endpoint, None),
        "public_url": reader.get("public_url", _http_url, ""),
    }
    settings_defaults = WebSettings()
    settings = WebSettings(
        session_hours=reader.get("session_hours", _positive_number, settings_defaults.session_hours),
        idle_minutes=reader.get("idle_minutes", _positive_number, settings_defaults.idle_minutes),
        lock_after=reader.get("lock_after", _at_least_one, settings_defaults.lock_after),
        lock_minutes=reader.get("lock_minutes", _positive_number, settings_defaults.lock_minutes),
        ip_failures=reader.get("ip_failures", _at_least_one, settings_defaults.ip_failures),
        ip_window_minutes=reader.get("ip_window_minutes", _positive_number, settings_defaults.ip_window_minutes),
    )
    reader.finish()
    if (values["tls_cert"] is None) != (values["tls_key"] is None):
        reader.ctx.fail(reader.node, "web.tls_cert", "TLS needs both tls_cert and tls_key")
    return WebConfig(settings=settings, **values)


def _read_mail(ctx: _Context, reader: _Reader, base: Path) -> MailConfig:
    """``mail: {host, port, security, username, password | password_file, from, timeout,
    max_attempts, retry_initial, retry_max}``. The password is best kept in its own file
    (readable by the service only), so config.yaml can be shared without it."""
    defaults = MailConfig()
    password = reader.get("password", _text, "")
    password_file = reader.get("password_file", lambda v: base / str(v), None)
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            ctx.fail(reader.node_of("password_file"), "mail.password_file", f"cannot read it: {error.strerror}")
    mail = MailConfig(
        host=reader.get("host", _text, ""),
        port=reader.get("port", _port, defaults.port),
        security=reader.get("security", _choice("none", "starttls", "tls"), defaults.security),
        username=reader.get("username", _text, ""),
        password=password,
        sender=reader.get("from", _mail_address, ""),
        timeout=reader.get("timeout", _positive_duration, defaults.timeout),
        max_attempts=reader.get("max_attempts", _at_least_one, defaults.max_attempts),
        retry_initial=reader.get("retry_initial", _positive_duration, defaults.retry_initial),
        retry_max=reader.get("retry_max", _positive_duration, defaults.retry_max),
    )
    reader.finish()
    if mail.host and not mail.sender:
        ctx.fail(reader.node, "mail.from", "sending mail needs a From address (mail.from)")
    return mail


def _read_reports(reader: _Reader) -> ReportsConfig:
    """``reports: {mask_below, digest: {enabled, day, time}}``."""
    defaults = ReportsConfig()
    digest = reader.sub("digest")
    reports = ReportsConfig(
        mask_below=reader.get("mask_below", _at_least_one, defaults.mask_below),
        digest=digest.get("enabled", _boolean, defaults.digest),
        digest_day=digest.get("day", _weekday, defaults.digest_day),
        digest_time=digest.get("time", _clock_time, defaults.digest_time),
    )
    digest.finish()
    reader.finish()
    return reports


def _read_alerts(ctx: _Context, reader: _Reader, categories: Iterable[str], groups: Iterable[str]) -> tuple[AlertRule, ...]:
    """``alerts: {rules: {NAME: {categories, bypass, threshold, within, per, groups, email,
    webhooks}}}``: the safeguarding alert rules, part of the policy document."""
    rules: list[AlertRule] = []
    rules_node = reader.node_of("rules")
    reader.finish()
    if rules_node is None:
        return ()
    if not isinstance(rules_node.value, dict):
        ctx.fail(rules_node, "alerts.rules", "expected a mapping of rule names to definitions")
        return ()
    known_categories, known_groups = set(categories), set(groups)

    def category(value: Any) -> str:
        if str(value) not in known_categories:
            raise ValueError(f"unknown category '{value}'")
        return str(value)

    def group(value: Any) -> str:
        if str(value) not in known_groups:
            raise ValueError(f"unknown group '{value}'")
        return str(value)

    defaults = AlertRule(name="")
    for name, (_, node) in rules_node.value.items():
        rule_reader = _Reader(ctx, node, f"alerts.rules.{name}")
        rule = AlertRule(
            name=str(name),
            categories=rule_reader.get_list("categories", category),
            bypass=rule_reader.get("bypass", _boolean, False),
            threshold=rule_reader.get("threshold", _at_least_one, defaults.threshold),
            window=rule_reader.get("within", _positive_duration, defaults.window),
            per=rule_reader.get("per", _choice("client", "group"), defaults.per),
            groups=rule_reader.get_list("groups", group),
            email=rule_reader.get_list("email", _mail_address),
            webhooks=rule_reader.get_list("webhooks", _http_url),
        )
        rule_reader.finish()
        if rule_reader.node_of("categories") is None and not rule.bypass:
            ctx.fail(node, f"alerts.rules.{name}", "a rule needs 'categories' or 'bypass: true'")
        elif not rule.email and not rule.webhooks:
            ctx.fail(node, f"alerts.rules.{name}", "a rule needs recipients: 'email' or 'webhooks' (or both)")
        else:
            rules.append(rule)
    return tuple(rules)


def _port(value: Any) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise ValueError(f"'{value}' is not a port number")
    return port


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"'{value}' must be longer than zero")
    return seconds


_MAIL_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")


def _mail_address(value: Any) -> str:
    """A mail address, bare or as ``Name <address>``."""
    text = str(value).strip()
    inner = text[text.find("<") + 1 : text.rfind(">")] if text.endswith(">") and "<" in text else text
    if not _MAIL_ADDRESS.fullmatch(inner):
        raise ValueError(f"'{value}' is not a mail address")
    return text


def _http_url(value: Any) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
        raise ValueError(f"'{value}' is not an http:// or https:// URL")
    return text


def _weekday(value: Any) -> str:
    """One day, ``mon`` or ``monday``, as its weekday key."""
    day = str(value).strip().lower()
    if day[:3] not in WEEKDAYS or not "monday tuesday wednesday thursday friday saturday sunday".count(day):
        raise ValueError(f"'{value}' is not a day of the week (mon ... sun)")
    return day[:3]


def _clock_time(value: Any) -> str:
    # YAML 1.1 reads an unquoted 07:30 as the sexagesimal number 450.
    text = f"{value // 60:02d}:{value % 60:02d}" if isinstance(value, int) else str(value).strip()
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", text):
        raise ValueError(f"'{value}' is not a time of day (HH:MM)")
    return text


def _whole_days(value: Any) -> int:
    days = parse_duration(value if isinstance(value, str) else f"{value}d") / 86400
    if days < 1:
        raise ValueError(f"'{value}' is shorter than a day")
    return int(days)


def _youtube_mode(value: Any) -> str:
    # YAML 1.1 reads a bare `off` as False; accept it as the admin meant it.
    return "off" if value is False else _choice("strict", "moderate", "off")(value)


_block_mode = _choice("null_ip", "nxdomain", "refused", "blockpage")


def _domain(value: Any) -> str:
    # ``*.example.com`` is accepted as ``example.com``: a listed name covers the names below it.
    return domain_name(str(value).strip().removeprefix("*."))


def _ip(value: Any) -> str:
    return str(ipaddress.ip_address(str(value)))


def _compose(path: Path) -> _Node:
    with open(path, encoding="utf-8") as stream:
        root = yaml.compose(stream, Loader=_YAML_LOADER)
    return _to_nodes(root) if root is not None else _Node({}, 1)


def build_config(root: _Node, file: str, base: Path) -> Config:
    """Convert a parsed YAML tree into ``Config``; raises ``ConfigError`` listing every problem."""
    ctx = _Context(file)
    top = _Reader(ctx, root, "")
    server = _read_server(top.sub("server"))
    upstream = _read_upstream(ctx, top.sub("upstream"))
    cache = _read_dataclass(
        top.sub("cache"),
        CacheConfig,
        {
            "max_entries": _positive_int,
            "min_ttl": _int_seconds,
            "max_ttl": _int_seconds,
            "negative_max_ttl": _int_seconds,
            "serve_stale_max_age": parse_duration,
            "stale_ttl": _int_seconds,
        },
    )
    log = _read_dataclass(
        top.sub("log"),
        LogConfig,
        {
            "level": _choice("debug", "info", "warning", "error"),
            "format": _choice("text", "json"),
            "query_log": lambda v: base / str(v),
        },
    )
    recorder = _read_dataclass(top.sub("recorder"), RecorderConfig, {"queue_size": _at_least_one})
    metrics_reader = top.sub("metrics")
    metrics_listen = metrics_reader.get("listen", parse_endpoint, None)
    metrics_reader.finish()
    timezone = top.get("timezone", parse_timezone, "UTC")
    lists = _read_dataclass(
        top.sub("lists"), ListsConfig, {"refresh_interval": _refresh_interval, "download_timeout": parse_duration}
    )
    categories = _read_catalogue(ctx, top, base)
    categories.update(_read_categories(ctx, top.node_of("categories"), "categories", base))
    schedules = _read_schedules(ctx, top.node_of("schedules"), timezone)
    groups = _read_groups(ctx, top.node_of("groups"), categories, schedules)
    default_group = top.get("default_group", _text, "default")
    if default_group not in {g.name for g in groups}:
        groups.append(GroupConfig(name=default_group, description="Clients that match no other group"))
    alert_rules = _read_alerts(ctx, top.sub("alerts"), categories, (g.name for g in groups))
    store = _read_store(ctx, top.sub("store"))
    web = _read_web(top.sub("web"), base)
    mail = _read_mail(ctx, top.sub("mail"), base)
    reports = _read_reports(top.sub("reports"))
    blocking = _read_dataclass(
        top.sub("blocking"),
        BlockingConfig,
        {"mode": _block_mode, "ttl": _int_seconds, "page_ipv4": _ip, "page_ipv6": _ip},
    )
    config = Config(
        server=server,
        upstream=upstream,
        cache=cache,
        log=log,
        recorder=recorder,
        metrics_listen=metrics_listen,
        data_dir=base / top.get("data_dir", _text, "data"),
        trusted_forwarders=top.get_list("trusted_forwarders", parse_network),
        timezone=timezone,
        lists=lists,
        categories=tuple(categories.values()),
        schedules=tuple(schedules.values()),
        groups=tuple(groups),
        default_group=default_group,
        allow_domains=top.get_list("allow", _domain),
        deny_domains=top.get_list("deny", _domain),
        blocking=blocking,
        protected_categories=top.get_list("protected_categories", _text) or Config().protected_categories,
        alert_rules=alert_rules,
        store=store,
        web=web,
        mail=mail,
        reports=reports,
        source=Path(file) if file != "<embedded default>" else None,
    )
    top.finish()
    _check_consistency(ctx, top, config)
    if ctx.problems:
        raise ConfigError(ctx.problems)
    return config


def _int_seconds(value: Any) -> int:
    return int(parse_duration(value))


NEEDS_PAGE_ADDRESS = "block mode 'blockpage' needs the block page's address"


def _check_consistency(ctx: _Context, top: _Reader, config: Config) -> None:
    """Rules that involve several sections at once; each problem points at the line that
    makes it one."""
    if not (config.blocking.page_ipv4 or config.blocking.page_ipv6):
        if config.blocking.mode == "blockpage":
            ctx.fail(_node_at(top.node, "blocking", "mode"), "blocking.page_ipv4", NEEDS_PAGE_ADDRESS)
        for group in config.groups:
            if group.block_mode == "blockpage":
                ctx.fail(_node_at(top.node, "groups", group.name, "block_mode"), "blocking.page_ipv4", NEEDS_PAGE_ADDRESS)
    seen: dict[str, str] = {}
    for group in config.groups:
        for mac in group.macs:
            if mac in seen and seen[mac] != group.name:
                ctx.fail(
                    _node_at(top.node, "groups", group.name, "macs"),
                    f"groups.{group.name}.macs",
                    f"{mac} is also in group '{seen[mac]}'",
                )
            seen[mac] = group.name


def _node_at(node: _Node | None, *keys: str) -> _Node | None:
    """The node at a path of mapping keys, or the deepest one that exists on the way."""
    for key in keys:
        if node is None or not isinstance(node.value, dict) or key not in node.value:
            return node
        node = node.value[key][1]
    return node


# The keys of the policy document: what the console edits and what is kept as revisions in the
# store. Everything else (listeners, upstreams, cache, store...) belongs to the node's file.
POLICY_KEYS = (
    "timezone",
    "trusted_forwarders",
    "catalogue",
    "categories",
    "schedules",
    "groups",
    "default_group",
    "allow",
    "deny",
    "blocking",
    "protected_categories",
    "alerts",
)


def policy_document(path: str | Path) -> str:
    """The policy sections of a config file as a YAML document (comments and anchors resolved),
    in a stable form so that an unchanged file gives the same text every time."""
    with open(path, encoding="utf-8") as stream:
        data = yaml.load(stream, Loader=_YAML_LOADER) or {}
    return dump_policy({key: data[key] for key in POLICY_KEYS if key in data})


class _PlainDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Writes shared values out in full: a policy document is read by people, not parsers."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_policy(document: dict) -> str:
    return yaml.dump(document, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, default_flow_style=False)


# Config fields that come from the policy document (POLICY_KEYS, as the loader names them).
POLICY_FIELDS = (
    "timezone",
    "trusted_forwarders",
    "categories",
    "schedules",
    "groups",
    "default_group",
    "allow_domains",
    "deny_domains",
    "blocking",
    "protected_categories",
    "alert_rules",
)

# The policy of the embedded default: one group for everyone, bypass protection on.
EMBEDDED_POLICY = dump_policy({"groups": {"default": {"description": "Every client"}}, "default_group": "default"})


def config_with_policy(base: Config, document: str, label: str = "policy") -> Config:
    """``base`` (a node's file or the embedded default) with its policy replaced by
    ``document`` (a revision from the store or the console). Relative paths in the document
    are relative to the config file's folder. Problems are reported as ``label:LINE: key: ...``."""
    try:
        node = yaml.compose(document, Loader=_YAML_LOADER)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        raise ConfigError([f"{label}{f':{mark.line + 1}' if mark else ''}: not valid YAML: {error.problem}"]) from None
    root = _to_nodes(node) if node is not None else _Node({}, 1)
    if not isinstance(root.value, dict):
        raise ConfigError([f"{label}:{root.line}: the policy must be a mapping of sections"])
    unknown = [(key, key_node) for key, (key_node, _) in root.value.items() if key not in POLICY_KEYS]
    if unknown:
        raise ConfigError(
            [f"{label}:{node.line}: {key}: not a policy section ({', '.join(POLICY_KEYS)})" for key, node in unknown]
        )
    base_dir = base.source.resolve().parent if base.source is not None else Path.cwd()
    policy = build_config(root, label, base_dir)
    return dataclasses.replace(base, **{name: getattr(policy, name) for name in POLICY_FIELDS})


def load_config(path: str | Path) -> Config:
    """Read and validate a config file. Raises ``ConfigError`` (with every problem) or OSError."""
    path = Path(path)
    try:
        root = _compose(path)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError([f"{path}{line}: not valid YAML: {error.problem}"]) from None
    return build_config(root, str(path), path.resolve().parent)


def default_config(upstreams: Iterable[Endpoint] = ()) -> Config:
    """The embedded default: DNS on 127.0.0.1:5353 and [::1]:5353, forwarding to the system's
    resolvers (or to ``upstreams``), no lists, bypass protection on. Needs no root."""
    servers = tuple(UpstreamServerConfig(e) for e in upstreams) or system_resolvers()
    listen = (Endpoint("127.0.0.1", 5353),) + ((Endpoint("::1", 5353),) if _has_ipv6_loopback() else ())
    base = Config(server=ServerConfig(listen=listen), upstream=UpstreamConfig(servers=servers), source=None)
    return config_with_policy(base, EMBEDDED_POLICY, "embedded default")


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
                servers.append(UpstreamServerConfig(Endpoint(_ip(parts[1].split("%")[0]), 53)))
            except ValueError:
                continue  # one bad line must not hide the name servers after it
    return tuple(servers) or (
        UpstreamServerConfig(Endpoint("9.9.9.9", 53), name="quad9"),
        UpstreamServerConfig(Endpoint("1.1.1.1", 53), name="cloudflare"),
    )
