"""The node's own settings: listeners, upstreams, cache, logs, store, console, mail... What
one resolver's config.yaml says about itself, never part of a policy revision."""

from __future__ import annotations

from pathlib import Path

from filterdns.config import values as v
from filterdns.config.model import NodeConfig
from filterdns.config.sections.console import read_mail, read_reports, read_web
from filterdns.config.sections.encrypted import read_doh, read_dot, read_identity
from filterdns.config.sections.network import read_server, read_upstream
from filterdns.config.sections.runtime import read_cache, read_lists, read_log, read_metrics, read_recorder, read_store
from filterdns.config.yamlnodes import Reader, default_of


def read_node(top: Reader, base: Path, source: Path) -> NodeConfig:
    """The node's settings from the top-level mapping ``top`` of file ``source``; paths
    relative to ``base`` (the file's folder)."""
    doh = read_doh(top.sub("doh"), base)
    return NodeConfig(
        server=read_server(top.sub("server")),
        upstream=read_upstream(top.sub("upstream")),
        cache=read_cache(top.sub("cache")),
        log=read_log(top.sub("log"), base),
        recorder=read_recorder(top.sub("recorder")),
        metrics_listen=read_metrics(top.sub("metrics")),
        data_dir=base / top.get("data_dir", v.text, default_of(NodeConfig, "data_dir")),
        lists=read_lists(top.sub("lists")),
        fetch_allow=top.get_list("fetch_allow", v.parse_network, v.host_bits_note),
        store=read_store(top.sub("store")),
        web=read_web(top.sub("web"), base),
        mail=read_mail(top.sub("mail"), base),
        reports=read_reports(top.sub("reports")),
        doh=doh,
        dot=read_dot(top.sub("dot"), base, doh),
        identity=read_identity(top.sub("identity"), base),
        source=source,
    )
