"""The node's own machinery: ``cache``, ``log``, ``recorder``, ``metrics``, ``lists`` and
``store``."""

from __future__ import annotations

from pathlib import Path

from filterdns.config import values as v
from filterdns.config.model import CacheConfig, Endpoint, ListsConfig, LogConfig, RecorderConfig, StoreConfig
from filterdns.config.yamlnodes import Reader, read_flat


def read_cache(reader: Reader) -> CacheConfig:
    return read_flat(
        reader,
        CacheConfig,
        {
            "max_entries": v.positive_int,
            "min_ttl": v.int_seconds,
            "max_ttl": v.int_seconds,
            "negative_max_ttl": v.int_seconds,
            "serve_stale_max_age": v.parse_duration,
            "stale_ttl": v.int_seconds,
        },
    )


def read_log(reader: Reader, base: Path) -> LogConfig:
    """``log: {level, format, query_log}``; the query log's path is relative to the file."""
    return read_flat(
        reader,
        LogConfig,
        {
            "level": v.choice("debug", "info", "warning", "error"),
            "format": v.choice_of(LogConfig, "format"),
            "query_log": lambda value: base / str(value),
        },
    )


def read_recorder(reader: Reader) -> RecorderConfig:
    return read_flat(reader, RecorderConfig, {"queue_size": v.at_least_one})


def read_metrics(reader: Reader) -> Endpoint | None:
    """``metrics: {listen}``: where Prometheus metrics are served (none: not at all)."""
    listen = reader.get("listen", v.parse_endpoint, None)
    reader.finish()
    return listen


def read_lists(reader: Reader) -> ListsConfig:
    return read_flat(
        reader,
        ListsConfig,
        {"refresh_interval": v.refresh_interval, "download_timeout": v.parse_duration, "essential_alert_share": v.share},
    )


def read_store(reader: Reader) -> StoreConfig:
    """``store: {backend, path, dsn, node, retention: {raw_events, aggregates, audit, home}, buffer_limit}``."""
    retention = reader.sub("retention")
    values = reader.fields(
        StoreConfig,
        {
            "backend": v.choice_of(StoreConfig, "backend"),
            "path": lambda value: Path(str(value)),
            "dsn": v.text,
            "node": v.text,
            "buffer_limit": v.positive_int,
        },
    )
    values.update(
        retention.fields(
            StoreConfig,
            {
                "raw_events_days": ("raw_events", v.whole_days),
                "aggregates_days": ("aggregates", v.whole_days),
                "audit_days": ("audit", v.whole_days),
                "home_days": ("home", v.whole_days),
            },
        )
    )
    retention.finish()
    reader.finish()
    try:
        return StoreConfig(**values)
    except ValueError as error:
        reader.ctx.fail(reader.node, "store", str(error))
        return StoreConfig()
