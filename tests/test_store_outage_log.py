"""One store outage is one WARNING and one recovery line in the log, however many parts of
the program meet it: the event sink, policy sync and the district-wide jobs all use the same
store and fail together, and each still says what it saw at DEBUG level."""

from __future__ import annotations

import asyncio
import logging

from filterdns.store import StoreConfig, StoreSink, open_store
from filterdns.store.outage import OutageLog
from tests.test_metrics import make_event


async def test_a_store_outage_is_one_warning_and_one_recovery_line(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    store = await open_store(StoreConfig(), tmp_path)
    sink = StoreSink(store, buffer_limit=100, probe_interval=0.02)
    policy_sync = OutageLog(logging.getLogger("filterdns.policy"), store.outage)
    alerts_job = OutageLog(logging.getLogger("filterdns.alerts"), store.outage)
    try:
        store.path.rename(tmp_path / "moved.db")  # the store stops working for everyone
        await sink.write_batch([make_event() for _ in range(3)])
        for _ in range(3):  # each retries and fails, again and again
            policy_sync.failed("cannot follow the store; keeping the current policy")
            alerts_job.failed("alerts paused: the store failed")
        (tmp_path / "moved.db").rename(store.path)
        for _ in range(200):
            if not sink.pending:
                break
            await asyncio.sleep(0.01)
        assert sink.pending == 0
        policy_sync.recovered("the store is reachable again")
        alerts_job.recovered("alerts: the store works again")
    finally:
        await sink.close()
        await store.close()
    # (the SQLite store's own ERROR naming the moved file, and its "is back", are the file's
    # identity check speaking, which a moved file needs whatever else is going on)
    users = ("filterdns.store.sink", "filterdns.policy", "filterdns.alerts")
    outage_lines = [r for r in caplog.records if r.name in users and r.levelno >= logging.INFO]
    warnings = [r.getMessage() for r in outage_lines if r.levelno == logging.WARNING]
    recoveries = [r.getMessage() for r in outage_lines if r.levelno == logging.INFO]
    assert len(warnings) == 1 and "not taking query events" in warnings[0], warnings
    assert len(recoveries) == 1 and "takes query events again" in recoveries[0], recoveries
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert "cannot follow the store; keeping the current policy" in debug
    assert "alerts: the store works again" in debug


async def test_whoever_meets_the_outage_first_reports_it_and_its_end(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    store = await open_store(StoreConfig(), tmp_path)
    try:
        first = OutageLog(logging.getLogger("filterdns.policy"), store.outage)
        second = OutageLog(logging.getLogger("filterdns.alerts"), store.outage)
        first.failed("policy: store down")
        second.failed("alerts: store down")
        second.recovered("alerts: store back")
        first.recovered("policy: store back")
        # a new outage later is reported again, by whoever meets it first
        second.failed("alerts: store down again")
    finally:
        await store.close()
    levels = {r.getMessage(): r.levelname for r in caplog.records if r.name in ("filterdns.policy", "filterdns.alerts")}
    assert levels == {
        "policy: store down": "WARNING", "alerts: store down": "DEBUG", "alerts: store back": "DEBUG",
        "policy: store back": "INFO", "alerts: store down again": "WARNING",
    }  # fmt: skip
