"""Starting the staff console and the block page next to DNS.

The web stack is imported here, inside the function, and nowhere else in the server: a DNS
worker without a console (workers other than 0, a node with ``web.listen: null``) never loads
it. Neither is worth stopping DNS for, so a port that cannot be bound is logged and DNS
carries on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from filterdns.config.model import Config, Endpoint
from filterdns.server.listeners import explain_bind_error

if TYPE_CHECKING:
    from filterdns.server.control import Control

log = logging.getLogger("filterdns.service")


class WebRunner(Protocol):
    """A started web site (aiohttp's ``AppRunner``); ``cleanup`` stops it."""

    async def cleanup(self) -> None: ...


async def start_web_services(control: "Control", config: Config) -> list[WebRunner]:
    """Start the console (``web.listen``) and the block page where the policy uses one."""
    endpoints = blockpage_endpoints(config)
    if config.node.web.listen is None and not endpoints:
        return []
    from filterdns.web import start_web  # the web stack is only imported when it is used
    from filterdns.web.blockpage import start_blockpage

    runners: list[WebRunner] = []
    web_config = config.node.web
    if web_config.listen is not None:
        try:
            runners.append(
                await start_web(
                    control,
                    web_config.listen.host,
                    web_config.listen.port,
                    tls_cert=web_config.tls_cert,
                    tls_key=web_config.tls_key,
                    settings=web_config.settings,
                )
            )
        except OSError as error:
            log.error("the staff console could not start: %s", explain_bind_error(web_config.listen, error))
    for endpoint in endpoints:
        try:
            runner = await start_blockpage(control, endpoint.host, endpoint.port)
        except OSError as error:
            log.error("the block page could not start: %s", explain_bind_error(endpoint, error))
            continue
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        log.info("block page on http://%s/", Endpoint(host, port))
    return runners


def blockpage_endpoints(config: Config) -> list[Endpoint]:
    """Where the block page listens: ``web.blockpage_listen``, or port 80 of the block
    addresses when any group blocks with the page."""
    if config.node.web.blockpage_listen is not None:
        return [config.node.web.blockpage_listen]
    blocking = config.policy.blocking
    uses_page = blocking.mode == "blockpage" or any(g.block_mode == "blockpage" for g in config.policy.groups)
    return [Endpoint(a, 80) for a in (blocking.page_ipv4, blocking.page_ipv6) if a] if uses_page else []
