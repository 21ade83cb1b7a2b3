"""Upstream faults as an operator sees them: stale answers without waiting (RFC 8767) and
one log line per change of an upstream's health."""

from __future__ import annotations

import threading
import time

import dns.message
import dns.query
import pytest

from tests.support.fake_upstream import Behaviour, FakeUpstream, address_for
from tests.support.server import FilterDnsProcess, base_config


def lookup(server: FilterDnsProcess, name: str) -> tuple[dns.message.Message, float]:
    """(the answer, seconds it took)"""
    started = time.monotonic()
    response = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=server.port, timeout=6)
    return response, time.monotonic() - started


def lines_with(server: FilterDnsProcess, *words: str) -> list[str]:
    return [line for line in server.log_lines if all(word in line for word in words)]


def wait_for_line(server: FilterDnsProcess, *words: str, timeout: float) -> float:
    """Seconds until a log line has every word; fails the test after ``timeout``."""
    started = time.monotonic()
    while not lines_with(server, *words):
        if time.monotonic() - started > timeout:
            pytest.fail(f"no log line with {words} within {timeout} s:\n" + "\n".join(server.log_lines[-15:]))
        time.sleep(0.02)
    return time.monotonic() - started


def config(upstream: FakeUpstream, timeout: str) -> dict:
    return base_config(
        upstream.port,
        upstream={
            "servers": [{"address": f"127.0.0.1:{upstream.port}", "name": "fake"}],
            "timeout": timeout,
            "failure_threshold": 3,
            "retry_after": "1s",
        },
        cache={"serve_stale_max_age": "1h", "stale_ttl": 30},
    )


def test_a_slow_upstream_gets_the_client_a_stale_answer_after_the_client_timer(tmp_path):
    with FakeUpstream(default=Behaviour(ttl=1)) as upstream:
        with FilterDnsProcess(config(upstream, "4s"), tmp_path) as server:
            assert lookup(server, "slow.example")[0].answer
            time.sleep(1.2)  # expired, still kept for serve-stale
            upstream.set_rule("slow.example", Behaviour(ttl=60, delay=2.5))
            response, seconds = lookup(server, "slow.example")
            assert 1.6 < seconds < 2.3  # RFC 8767's 1.8 s, not the 4 s upstream timeout
            assert response.answer[0].ttl == 30
            assert [rr.to_text() for rr in response.answer[0]] == [address_for("slow.example")]
            time.sleep(1.2)  # the refresh went on and its answer went into the cache
            response, seconds = lookup(server, "slow.example")
            assert response.answer[0].ttl > 30 and seconds < 0.5


def test_once_the_upstream_is_down_stale_answers_come_at_once_and_health_is_logged_once(tmp_path):
    names = [f"n{i}.example" for i in range(100)]
    with FakeUpstream(default=Behaviour(ttl=1)) as upstream:
        with FilterDnsProcess(config(upstream, "1s"), tmp_path) as server:
            assert lines_with(server, "upstreams:", "fake (127.0.0.1:")
            for name in names:
                assert lookup(server, name)[0].answer
            time.sleep(1.2)
            upstream.default = Behaviour("drop")
            # Three lookups at once time out together: the upstream is marked down.
            started = time.monotonic()
            threads = [threading.Thread(target=lookup, args=(server, name)) for name in names[:3]]
            for thread in threads:
                thread.start()
            wait_for_line(server, "WARNING", "upstream fake (127.0.0.1:", "is unhealthy", "no reply in time", timeout=3)
            assert time.monotonic() - started < 1.0 + 1.0  # the upstream timeout + 1 s
            for thread in threads:
                thread.join()
            seconds = []
            for name in names[3:]:
                response, took = lookup(server, name)
                assert response.answer[0].ttl == 30 and [rr.to_text() for rr in response.answer[0]] == [address_for(name)]
                seconds.append(took)
            seconds.sort()
            assert seconds[int(len(seconds) * 0.99) - 1] < 0.050, seconds[-5:]
            # Back again: a background probe finds it, one INFO line says so.
            upstream.default = Behaviour(ttl=60)
            deadline = time.monotonic() + 6
            while not lines_with(server, "upstream fake", "answers again") and time.monotonic() < deadline:
                lookup(server, names[0])
                time.sleep(0.1)
            assert len(lines_with(server, "INFO", "upstream fake (127.0.0.1:", "answers again")) == 1
            assert len(lines_with(server, "upstream fake", "is unhealthy")) == 1
            assert lookup(server, "fresh.example")[0].answer[0].ttl == 60


def test_upstreams_change_on_sighup_and_queries_in_flight_finish_on_the_old_ones(tmp_path):
    with FakeUpstream() as old, FakeUpstream() as new:
        with FilterDnsProcess(config(old, "4s"), tmp_path) as server:
            old.set_rule("in-flight.example", Behaviour(delay=1.0))
            answers: list[dns.message.Message] = []
            flight = threading.Thread(target=lambda: answers.append(lookup(server, "in-flight.example")[0]))
            flight.start()
            time.sleep(0.2)
            server.write_config(config(new, "4s"))
            server.reload()
            flight.join()
            assert [rr.to_text() for rr in answers[0].answer[0]] == [address_for("in-flight.example")]
            assert lookup(server, "after.example")[0].answer
            assert "after.example" in [q.qname for q in new.queries]
            assert "after.example" not in [q.qname for q in old.queries]
            assert lines_with(server, "upstreams changed: now fake (127.0.0.1:")
            assert not lines_with(server, "restart")


def test_a_reload_keeps_the_upstream_given_on_the_command_line(tmp_path):
    with FakeUpstream() as in_file, FakeUpstream() as on_command_line:
        settings = config(in_file, "2s")
        with FilterDnsProcess(settings, tmp_path, ("--upstream", f"127.0.0.1:{on_command_line.port}")) as server:
            server.write_config({**settings, "deny": ["edited.example"]})
            server.reload()
            server.write_config(settings)  # and restored
            server.reload()
            assert lookup(server, "which.example")[0].answer
            assert [q.qname for q in on_command_line.queries] == ["which.example"]
            assert not in_file.queries
            assert not lines_with(server, "upstream", "changed") and not lines_with(server, "restart")
