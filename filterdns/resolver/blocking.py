"""Stage 4a: the answer to a query the policy blocked, in the group's block mode, with an
Extended DNS Error whose text names the category and the group (RFC 8914), so that an admin
running ``dig`` sees why without opening the console."""

from __future__ import annotations

from filterdns.config.model import BlockingConfig, Config
from filterdns.policy.engine import Decision
from filterdns.wire.answer import EDE_BLOCKED, EDE_FILTERED, block_response, edns_options
from filterdns.wire.query import ClientSubnet, Query


class BlockResponder:
    def __init__(self, config: Config):
        self._blocking: BlockingConfig = config.policy.blocking

    def respond(self, query: Query, decision: Decision, subnet: ClientSubnet | None) -> bytes:
        """Bytes of the block answer for this query and decision."""
        if decision.category:
            code, text = EDE_FILTERED, f"category {decision.category} blocked for group {decision.group}"
        else:
            code, text = EDE_BLOCKED, f"{decision.reason} for group {decision.group}"
        if decision.schedule_window:
            text += f" during {decision.schedule_window}"
        options = edns_options(code, text, subnet) if query.has_opt else b""
        return block_response(
            query,
            decision.block_mode,
            self._blocking.ttl,
            page_ipv4=self._blocking.page_ipv4,
            page_ipv6=self._blocking.page_ipv6,
            rcode=decision.rcode_override,
            options=options,
        )
