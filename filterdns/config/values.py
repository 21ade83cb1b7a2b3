"""Value parsers for config.yaml: each turns one raw YAML value into its typed form.

A parser raises ``ValueError`` with a sentence meant for a person; the section readers turn
that into ``file:line: key: sentence``. Parsers know nothing of defaults (those live in
``model.py``) nor of where a value sits in the file.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from datetime import date
from typing import Any, Callable, Literal, get_args, get_origin, get_type_hints

from filterdns.config.model import BLOCK_MODES, WEEKDAYS, Endpoint, IPNetwork
from filterdns.names import domain_name

Parser = Callable[[Any], Any]

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


def dns_endpoint(value: Any) -> Endpoint:
    """An upstream's address: port 53 unless another is given."""
    return parse_endpoint(value, 53)


def parse_network(value: Any) -> IPNetwork:
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        raise ValueError(f"'{value}' is not an IP address or CIDR network") from None


def host_bits_note(value: Any) -> str | None:
    """A warning for ``10.10.8.5/24``: accepted as the network 10.10.8.0/24, which is often
    not what was meant (a /32 for one device, or a typo in the prefix length)."""
    written = str(value).strip()
    address, slash, _ = written.partition("/")
    if not slash:
        return None
    network = ipaddress.ip_network(written, strict=False)
    if network.network_address == ipaddress.ip_address(address):
        return None
    return f"'{written}' has host bits set; it means the network {network}"


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


def choice(*allowed: str) -> Parser:
    """A parser accepting exactly one of ``allowed`` (the members of a model ``Literal``)."""

    def parse(value: Any) -> str:
        if str(value) not in allowed:
            raise ValueError(f"'{value}' is not one of: {', '.join(allowed)}")
        return str(value)

    return parse


def positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"'{value}' is not a number of 0 or more")
    return float(value)


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"'{value}' is not a whole number of 0 or more")
    return value


def at_least_one(value: Any) -> int:
    """Sizes and counts where 0 would break or mean nothing useful (a queue of 0, 0 workers)."""
    number = positive_int(value)
    if number < 1:
        raise ValueError(f"'{value}' must be at least 1")
    return number


def refresh_interval(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds < 60:
        raise ValueError(f"'{value}': refreshing lists more often than once a minute only loads their servers")
    return seconds


def positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"'{value}' must be longer than zero")
    return seconds


def share(value: Any) -> float:
    """A share such as ``0.02`` or ``"2%"``."""
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"'{value}' is not a share such as 0.02 or 2%") from None
    if not 0 <= number <= 1:
        raise ValueError(f"'{value}' is not a share between 0 and 1 (or 0% and 100%)")
    return number


def int_seconds(value: Any) -> int:
    return int(parse_duration(value))


def whole_days(value: Any) -> int:
    days = parse_duration(value if isinstance(value, str) else f"{value}d") / 86400
    if days < 1:
        raise ValueError(f"'{value}' is shorter than a day")
    return int(days)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"'{value}' is not true or false")
    return value


def text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        raise ValueError("expected a text value")
    return str(value)


def port(value: Any) -> int:
    number = int(value)
    if not 0 < number < 65536:
        raise ValueError(f"'{value}' is not a port number")
    return number


_MAIL_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")


def mail_address(value: Any) -> str:
    """A mail address, bare or as ``Name <address>``."""
    written = str(value).strip()
    inner = written[written.find("<") + 1 : written.rfind(">")] if written.endswith(">") and "<" in written else written
    if not _MAIL_ADDRESS.fullmatch(inner):
        raise ValueError(f"'{value}' is not a mail address")
    return written


def http_url(value: Any) -> str:
    written = str(value).strip()
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", written):
        raise ValueError(f"'{value}' is not an http:// or https:// URL")
    return written


def weekday(value: Any) -> str:
    """One day, ``mon`` or ``monday``, as its weekday key."""
    day = str(value).strip().lower()
    if day[:3] not in WEEKDAYS or not "monday tuesday wednesday thursday friday saturday sunday".count(day):
        raise ValueError(f"'{value}' is not a day of the week (mon ... sun)")
    return day[:3]


def clock_time(value: Any) -> str:
    # YAML 1.1 reads an unquoted 07:30 as the sexagesimal number 450.
    written = f"{value // 60:02d}:{value % 60:02d}" if isinstance(value, int) else str(value).strip()
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", written):
        raise ValueError(f"'{value}' is not a time of day (HH:MM)")
    return written


def youtube_mode(value: Any) -> str:
    # YAML 1.1 reads a bare `off` as False; accept it as the admin meant it.
    return "off" if value is False else choice("strict", "moderate", "off")(value)


block_mode = choice(*BLOCK_MODES)


def choice_of(cls: type, name: str) -> Parser:
    """A parser for the ``Literal`` type of field ``name`` of model class ``cls``, so the
    allowed values are written once, in the model."""
    hint = get_type_hints(cls)[name]
    if get_origin(hint) is not Literal:
        raise TypeError(f"{cls.__name__}.{name} is not a Literal field")
    return choice(*get_args(hint))


def domain(value: Any) -> str:
    # ``*.example.com`` is accepted as ``example.com``: a listed name covers the names below it.
    return domain_name(str(value).strip().removeprefix("*."))


def ip_address(value: Any) -> str:
    return str(ipaddress.ip_address(str(value)))
