"""``server`` (listeners and their limits) and ``upstream`` (where questions are forwarded)."""

from __future__ import annotations

from filterdns.config import values as v
from filterdns.config.model import RateLimitConfig, ServerConfig, UpstreamConfig, UpstreamServerConfig
from filterdns.config.yamlnodes import Reader, default_of, read_flat


def read_server(reader: Reader) -> ServerConfig:
    """``server: {listen, allow_networks, rate_limit: {...}, tcp_*, any_queries, ...}``."""
    rate_limit = read_flat(
        reader.sub("rate_limit"),
        RateLimitConfig,
        {"queries_per_second": v.positive_number, "burst": v.positive_int, "slip": v.positive_int},
    )
    values = reader.fields(
        ServerConfig,
        {
            "tcp_idle_timeout": v.parse_duration,
            "tcp_max_connections": v.positive_int,
            "tcp_max_per_client": v.at_least_one,
            "any_queries": v.choice_of(ServerConfig, "any_queries"),
            "max_pending_upstream": v.positive_int,
            "udp_receive_buffer": v.positive_int,
            "uvloop": v.boolean,
            "workers": v.at_least_one,
            "user": v.text,
        },
    )
    # An empty list means "not given": a resolver listening nowhere is never what was meant.
    values["listen"] = reader.get_list("listen", v.parse_endpoint) or default_of(ServerConfig, "listen")
    values["allow_networks"] = reader.get_list("allow_networks", v.parse_network, v.host_bits_note) or default_of(
        ServerConfig, "allow_networks"
    )
    reader.finish()
    return ServerConfig(rate_limit=rate_limit, **values)


def read_upstream(reader: Reader) -> UpstreamConfig:
    """``upstream: {servers: [HOST[:PORT] | {address, protocol, name}], timeout, ...}``."""
    ctx = reader.ctx
    servers = []
    servers_node = reader.node_of("servers")
    if servers_node is not None and not isinstance(servers_node.value, list):
        ctx.fail(servers_node, reader.child_path("servers"), "expected a list of upstream servers")
    for i, item in enumerate(reader.items("servers")):
        path = f"{reader.child_path('servers')}[{i}]"
        if isinstance(item.value, dict):
            sub = Reader(ctx, item, path)
            address = sub.get("address", v.dns_endpoint, None)
            server_fields = sub.fields(
                UpstreamServerConfig, {"protocol": v.choice_of(UpstreamServerConfig, "protocol"), "name": v.text}
            )
            sub.finish()
            if address is None:
                ctx.fail(item, path, "an upstream needs an address")
                continue
            servers.append(UpstreamServerConfig(address, **server_fields))
        else:
            try:
                servers.append(UpstreamServerConfig(v.dns_endpoint(item.value)))
            except ValueError as error:
                ctx.fail(item, path, str(error))
    values = reader.fields(
        UpstreamConfig,
        {"timeout": v.parse_duration, "failure_threshold": v.positive_int, "retry_after": v.parse_duration},
    )
    reader.finish()
    return UpstreamConfig(servers=tuple(servers), **values)
