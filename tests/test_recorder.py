"""The recorder: never blocks the query path, delivers batches in order, survives bad sinks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from filterdns.config.model import LogConfig, RecorderConfig
from filterdns.resolver.events import QueryEvent, qtype_name, rcode_name
from filterdns.resolver.recorder import JsonLinesSink, Recorder


def make_event(n: int = 0, **changes: object) -> QueryEvent:
    fields: dict[str, object] = dict(
        time=1_700_000_000.0 + n,
        client="192.0.2.10",
        group="class-7a",
        name=f"host{n}.example.org",
        qtype=1,
        verdict="allowed",
        reason="",
        category="",
        rcode=0,
        latency_ms=0.25,
        answered_by="cache",
        transport="udp",
    )
    fields.update(changes)
    return QueryEvent(**fields)  # type: ignore[arg-type]


class ListSink:
    """Keeps every batch it is given."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.batches: list[list[QueryEvent]] = []
        self.closed = False

    @property
    def events(self) -> list[QueryEvent]:
        return [event for batch in self.batches for event in batch]

    async def write_batch(self, events: Sequence[QueryEvent]) -> None:
        self.batches.append(list(events))

    async def close(self) -> None:
        self.closed = True


class FailingSink(ListSink):
    """Raises on every write, like a sink whose disk is full."""

    async def write_batch(self, events: Sequence[QueryEvent]) -> None:
        raise OSError("disk full")


class StuckSink(ListSink):
    """Never finishes a write until released, like a hung database."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def write_batch(self, events: Sequence[QueryEvent]) -> None:
        await self.release.wait()
        await super().write_batch(events)


def test_event_is_slotted_and_serialises_codes_as_names() -> None:
    event = make_event(qtype=65, rcode=3, mac="aa:bb:cc:dd:ee:ff", latency_ms=1.23456)
    assert not hasattr(event, "__dict__")
    data = event.to_dict()
    assert data["qtype"] == 65 and data["qtype_name"] == "HTTPS"
    assert data["rcode"] == 3 and data["rcode_name"] == "NXDOMAIN"
    assert data["latency_ms"] == 1.235
    assert data["mac"] == "aa:bb:cc:dd:ee:ff"
    assert qtype_name(65280) == "TYPE65280"
    assert rcode_name(23) == "RCODE23"


def test_full_buffer_drops_and_counts_without_raising() -> None:
    sink = ListSink()
    recorder = Recorder(3, [sink])
    for n in range(5):
        assert recorder.record(make_event(n)) is None
    assert recorder.pending == 3
    assert recorder.dropped == 2


def test_listeners_see_every_event_even_dropped_and_failures_stay_inside() -> None:
    seen: list[str] = []
    recorder = Recorder(1, [ListSink()])

    def broken(event: QueryEvent) -> None:
        raise RuntimeError("listener bug")

    recorder.add_listener(broken)
    recorder.add_listener(lambda event: seen.append(event.name))
    recorder.record(make_event(1))
    recorder.record(make_event(2))
    assert seen == ["host1.example.org", "host2.example.org"]
    assert recorder.dropped == 1


def test_without_sinks_nothing_is_buffered() -> None:
    recorder = Recorder(2)
    for n in range(10):
        recorder.record(make_event(n))
    assert recorder.pending == 0 and recorder.dropped == 0


async def test_flush_delivers_ordered_batches() -> None:
    sink = ListSink()
    recorder = Recorder(100, [sink], batch_size=2)
    events = [make_event(n) for n in range(5)]
    for event in events:
        recorder.record(event)
    await recorder.flush()
    assert [len(batch) for batch in sink.batches] == [2, 2, 1]
    assert sink.events == events
    assert recorder.pending == 0


async def test_background_task_drains_on_timer() -> None:
    sink = ListSink()
    recorder = Recorder(100, [sink], flush_interval=0.01)
    await recorder.start()
    recorder.record(make_event(1))
    async with asyncio.timeout(2):
        while not sink.events:
            await asyncio.sleep(0.005)
    assert sink.events[0].name == "host1.example.org"
    await recorder.close()


async def test_full_batch_wakes_the_drain_before_the_timer() -> None:
    sink = ListSink()
    recorder = Recorder(100, [sink], batch_size=3, flush_interval=60)
    await recorder.start()
    for n in range(3):
        recorder.record(make_event(n))
    async with asyncio.timeout(2):
        while len(sink.events) < 3:
            await asyncio.sleep(0.005)
    await recorder.close()


async def test_failing_sink_does_not_stop_the_others_or_the_drain(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad, good = FailingSink("bad"), ListSink("good")
    recorder = Recorder(100, [bad, good], batch_size=4)
    for n in range(6):
        recorder.record(make_event(n))
    await recorder.flush()
    recorder.record(make_event(6))
    await recorder.flush()
    assert len(good.events) == 7
    # Batches of 4, 2 and then 1 all failed in the bad sink...
    assert recorder.sink_errors == {"bad": 3, "good": 0}
    assert recorder.sink_lost == {"bad": 7, "good": 0}
    # ...but the log says so once, not per batch.
    assert len([r for r in caplog.records if "event sink bad failed" in r.getMessage()]) == 1


async def test_stuck_sink_never_blocks_record() -> None:
    sink = StuckSink()
    # Only a full batch wakes the drain (the timer is far away), so the counts are exact.
    recorder = Recorder(4, [sink], batch_size=2, flush_interval=60)
    await recorder.start()
    for n in range(20):
        recorder.record(make_event(n))
        await asyncio.sleep(0)
    # One batch is held by the stuck write, the buffer is full, the rest were dropped.
    assert recorder.pending == 4
    assert recorder.dropped == 20 - 4 - 2
    sink.release.set()
    await recorder.close()
    assert len(sink.events) == 6


async def test_close_flushes_and_closes_sinks() -> None:
    first, second = ListSink(), ListSink()
    recorder = Recorder(100, [first, second], flush_interval=60)
    await recorder.start()
    for n in range(3):
        recorder.record(make_event(n))
    await recorder.close()
    assert len(first.events) == len(second.events) == 3
    assert first.closed and second.closed


async def test_json_lines_file_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "log" / "queries.jsonl"
    recorder = Recorder.from_config(RecorderConfig(queue_size=50), LogConfig(query_log=path))
    recorder.record(make_event(1, verdict="blocked", reason="category:adult", category="adult"))
    recorder.record(make_event(2, qtype=28, transport="tcp"))
    await recorder.flush()

    rotated = tmp_path / "log" / "queries.jsonl.1"
    path.rename(rotated)  # what logrotate does before sending SIGHUP
    recorder.reopen_sinks()
    recorder.record(make_event(3))
    await recorder.close()

    old = [json.loads(line) for line in rotated.read_text().splitlines()]
    new = [json.loads(line) for line in path.read_text().splitlines()]
    assert [entry["name"] for entry in old] == ["host1.example.org", "host2.example.org"]
    assert old[0] == make_event(
        1, verdict="blocked", reason="category:adult", category="adult"
    ).to_dict()
    assert old[1]["qtype_name"] == "AAAA" and old[1]["transport"] == "tcp"
    assert [entry["name"] for entry in new] == ["host3.example.org"]


async def test_json_lines_sink_appends_to_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_text('{"earlier": true}\n')
    sink = JsonLinesSink(path)
    await sink.write_batch([make_event(1)])
    await sink.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"earlier": True}
    assert json.loads(lines[1])["client"] == "192.0.2.10"


def test_invalid_sizes_are_rejected() -> None:
    with pytest.raises(ValueError):
        Recorder(0)
