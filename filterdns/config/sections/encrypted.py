"""``doh`` and ``dot`` (the encrypted DNS listeners) and ``identity`` (the roster that names
their clients, ChromeOS's salt, the group for unknown ids): node settings."""

from __future__ import annotations

from pathlib import Path

from filterdns.config import values as v
from filterdns.config.model import DohConfig, DotConfig, IdentityConfig
from filterdns.config.yamlnodes import Reader
from filterdns.identity.hashing import check_salt


def _tls_pair(reader: Reader, base: Path) -> tuple[Path | None, Path | None]:
    cert = reader.get("tls_cert", lambda value: base / str(value), None)
    key = reader.get("tls_key", lambda value: base / str(value), None)
    if (cert is None) != (key is None):
        reader.ctx.fail(reader.node, reader.child_path("tls_cert"), "TLS needs both tls_cert and tls_key")
    return cert, key


def read_doh(reader: Reader, base: Path) -> DohConfig:
    """``doh: {listen, tls_cert, tls_key, trusted_proxies, idle_timeout, max_connections,
    max_per_client}``. Plain HTTP is refused unless a trusted proxy does TLS."""
    cert, key = _tls_pair(reader, base)
    values = reader.fields(
        DohConfig,
        {"idle_timeout": v.positive_duration, "max_connections": v.at_least_one, "max_per_client": v.at_least_one},
    )
    doh = DohConfig(
        listen=reader.get_list("listen", v.parse_endpoint),
        tls_cert=cert,
        tls_key=key,
        trusted_proxies=reader.get_list("trusted_proxies", v.parse_network, v.host_bits_note),
        **values,
    )
    reader.finish()
    if doh.listen and doh.tls_cert is None and not doh.trusted_proxies:
        reader.ctx.fail(
            reader.node, "doh.listen",
            "DoH needs tls_cert and tls_key, or trusted_proxies naming the reverse proxy that does TLS",
        )
    return doh


def read_dot(reader: Reader, base: Path, doh: DohConfig) -> DotConfig:
    """``dot: {listen, tls_cert, tls_key}``; the certificate defaults to DoH's."""
    cert, key = _tls_pair(reader, base)
    dot = DotConfig(
        listen=reader.get_list("listen", v.parse_endpoint),
        tls_cert=cert or doh.tls_cert,
        tls_key=key or doh.tls_key,
    )
    reader.finish()
    if dot.listen and dot.tls_cert is None:
        reader.ctx.fail(reader.node, "dot.listen", "DoT needs tls_cert and tls_key (here or in doh)")
    return dot


def _salt(value: object) -> str:
    salt = v.text(value)
    check_salt(salt)
    return salt


def read_identity(reader: Reader, base: Path) -> IdentityConfig:
    """``identity: {hostname, salt, unknown_group, roster, addresses}``. ``unknown_group`` names a
    policy group; a policy without it falls back to the strictest pupil group (logged)."""
    values = reader.fields(
        IdentityConfig,
        {
            "hostname": v.domain,
            "salt": _salt,
            "unknown_group": v.text,
            "roster": lambda value: base / str(value),
        },
    )
    values["addresses"] = reader.get_list("addresses", v.ip_address)
    reader.finish()
    return IdentityConfig(**values)
