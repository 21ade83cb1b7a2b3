"""The pipeline's per-second answer memo changes nothing a client or the query log can see."""

from __future__ import annotations

import time

import dns.message
import dns.rdatatype
import pytest

from filterdns.config.loader import load_config
from filterdns.policy.engine import OverrideRule
from filterdns.server.service import Service
from tests.support.fake_upstream import FakeUpstream

CONFIG = """
server: {{listen: ["127.0.0.1:0"]}}
upstream: {{servers: ["127.0.0.1:{port}"]}}
data_dir: data
categories:
  games: {{domains: [games.example]}}
groups:
  pupils: {{networks: [127.0.0.0/8], block: [games], safe_search: {{search: true, youtube: strict}}}}
"""


@pytest.fixture
async def service(tmp_path):
    with FakeUpstream() as upstream:
        path = tmp_path / "config.yaml"
        path.write_text(CONFIG.format(port=upstream.port))
        running = Service(load_config(path))
        await running.start()
        yield running
        await running.stop()


def packet(name: str, query_id: int) -> bytes:
    query = dns.message.make_query(name, "A")
    query.id = query_id
    return query.to_wire()


async def test_repeated_packets_get_their_own_id_and_their_own_event(service):
    events = []
    service.recorder.add_listener(events.append)
    pipeline = service.pipeline
    first = pipeline.answer(packet("www.games.example", 1), "127.0.0.1", "udp")
    second = pipeline.answer(packet("www.games.example", 2), "127.0.0.1", "udp")
    assert first[:2] == b"\x00\x01" and second[:2] == b"\x00\x02" and first[2:] == second[2:]
    assert [(e.name, e.verdict) for e in events] == [("www.games.example", "blocked")] * 2


async def test_an_override_or_a_policy_swap_is_seen_by_the_very_next_packet(service):
    pipeline = service.pipeline
    blocked = dns.message.from_wire(pipeline.answer(packet("www.games.example", 1), "127.0.0.1", "udp"))
    assert blocked.answer[0][0].to_text() == "0.0.0.0"
    service.active.policy.engine.set_overrides(
        [OverrideRule("pupils", "allow", "", "games", "teacher", time.time() + 60)]
    )
    allowed = await pipeline.answer(packet("www.games.example", 2), "127.0.0.1", "udp")
    assert dns.message.from_wire(allowed).answer[0][0].to_text() != "0.0.0.0"
    await service.active.rebuild_lists()  # a new engine: no overrides, generation counted anew
    again = dns.message.from_wire(pipeline.answer(packet("www.games.example", 3), "127.0.0.1", "udp"))
    assert again.answer[0][0].to_text() == "0.0.0.0"


async def test_safe_search_answers_are_built_once_then_served_from_the_cache(service, monkeypatch):
    pipeline = service.pipeline
    built = []
    original = service.pipeline.forwarder.rewrite
    monkeypatch.setattr(pipeline.forwarder, "rewrite", lambda *args: built.append(args) or original(*args))
    first = pipeline.answer(packet("www.google.com", 1), "127.0.0.1", "udp")
    first = await first if not isinstance(first, bytes) else first
    pipeline._memo.clear()  # as if the next second had begun
    second = pipeline.answer(packet("www.google.com", 2), "127.0.0.1", "udp")
    assert isinstance(second, bytes) and len(built) == 1
    answer = dns.message.from_wire(second).answer
    assert answer[0].rdtype == dns.rdatatype.CNAME and answer[0][0].to_text() == "forcesafesearch.google.com."
    assert second[2:] == first[2:] or answer[1][0].to_text() == dns.message.from_wire(first).answer[1][0].to_text()
