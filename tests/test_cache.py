"""The answer cache (filterdns.resolver.cache): lifetimes, countdown, LRU and serve-stale."""

from __future__ import annotations

import pytest
from dnslib import CNAME, QTYPE, RCODE, RR, SOA, A, DNSRecord

from filterdns.config.model import CacheConfig
from filterdns.resolver.cache import AnswerCache
from filterdns.wire.records import parse_layout

KEY = b"www.example.com\x00\x01\x00\x01"
QUERY_ID = b"\xbe\xef"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_cache(clock: FakeClock, stale_retention: float = 0.0, **config: int) -> AnswerCache:
    return AnswerCache(CacheConfig(**config), clock=clock, stale_retention=stale_retention)


def soa_record(ttl: int, minimum: int) -> RR:
    times = (1, 7200, 900, 1209600, minimum)
    return RR("example.com", QTYPE.SOA, ttl=ttl, rdata=SOA("ns1.example.com", "hm.example.com", times))


def response(
    *answers: tuple[str, int], rcode: int = RCODE.NOERROR, soa: tuple[int, int] | None = None
) -> bytes:
    """A response for www.example.com/A: answers as (address, ttl), optional SOA (ttl, minimum)."""
    record = DNSRecord.question("www.example.com").reply()
    record.header.rcode = rcode
    for address, ttl in answers:
        record.add_answer(RR("www.example.com", QTYPE.A, ttl=ttl, rdata=A(address)))
    if soa is not None:
        record.add_auth(soa_record(*soa))
    return record.pack()


def question_of(message: bytes) -> bytes:
    return message[12 : parse_layout(message).question_end]


def ttls(message: bytes) -> list[int]:
    parsed = DNSRecord.parse(message)
    return [rr.ttl for rr in parsed.rr + parsed.auth + parsed.ar]


def cached(cache: AnswerCache, message: bytes) -> bytes | None:
    return cache.get(KEY, QUERY_ID, question_of(message))


def test_hit_patches_id_and_keeps_the_clients_case(clock: FakeClock) -> None:
    cache = make_cache(clock)
    stored = response(("192.0.2.1", 300))
    cache.put(KEY, stored)
    client_question = DNSRecord.question("wWw.ExAmPlE.cOm").pack()[12:]
    hit = cache.get(KEY, QUERY_ID, client_question)
    assert hit is not None
    parsed = DNSRecord.parse(hit)
    assert parsed.header.id == 0xBEEF
    assert str(parsed.q.qname) == "wWw.ExAmPlE.cOm."
    # dnslib compressed the answer's owner name into a pointer to the question.
    assert str(parsed.rr[0].rname) == "wWw.ExAmPlE.cOm."
    assert str(parsed.rr[0].rdata) == "192.0.2.1"
    assert hit[2:] == stored[2:12] + client_question + stored[12 + len(client_question) :]
    assert (cache.hits, cache.misses) == (1, 0)


def test_miss_is_counted(clock: FakeClock) -> None:
    cache = make_cache(clock)
    assert cache.get(KEY, QUERY_ID, b"") is None
    assert (cache.hits, cache.misses) == (0, 1)


def test_ttls_count_down_by_whole_seconds(clock: FakeClock) -> None:
    cache = make_cache(clock)
    stored = response(("192.0.2.1", 300), ("192.0.2.2", 600))
    cache.put(KEY, stored)
    assert ttls(cached(cache, stored) or b"") == [300, 600]
    clock.now += 10.9
    assert ttls(cached(cache, stored) or b"") == [290, 590]
    assert ttls(cached(cache, stored) or b"") == [290, 590]  # memoised second, same answer
    clock.now += 0.2
    assert ttls(cached(cache, stored) or b"") == [289, 589]


def test_entry_expires_at_its_smallest_ttl(clock: FakeClock) -> None:
    cache = make_cache(clock)
    stored = response(("192.0.2.1", 300), ("192.0.2.2", 600))
    cache.put(KEY, stored)
    clock.now += 299.5
    assert ttls(cached(cache, stored) or b"") == [1, 301]
    clock.now += 0.5
    assert cached(cache, stored) is None
    assert len(cache) == 0
    assert cache.misses == 1


def test_ttls_are_clamped_to_min_and_max(clock: FakeClock) -> None:
    cache = make_cache(clock, min_ttl=60, max_ttl=1000)
    stored = response(("192.0.2.1", 5), ("192.0.2.2", 500), ("192.0.2.3", 90_000))
    cache.put(KEY, stored)
    assert ttls(cached(cache, stored) or b"") == [60, 500, 1000]
    clock.now += 59
    assert ttls(cached(cache, stored) or b"") == [1, 441, 941]
    clock.now += 1
    assert cached(cache, stored) is None


def test_max_ttl_bounds_the_lifetime(clock: FakeClock) -> None:
    cache = make_cache(clock, max_ttl=100)
    stored = response(("192.0.2.1", 3600))
    cache.put(KEY, stored)
    clock.now += 99
    assert ttls(cached(cache, stored) or b"") == [1]
    clock.now += 1
    assert cached(cache, stored) is None


@pytest.mark.parametrize(
    ("rcode", "soa", "lifetime"),
    [
        (RCODE.NXDOMAIN, (3600, 300), 300),  # SOA MINIMUM below the SOA TTL
        (RCODE.NXDOMAIN, (200, 900), 200),  # SOA TTL below MINIMUM
        (RCODE.NOERROR, (3600, 120), 120),  # NODATA
    ],
)
def test_negative_answers_live_for_the_soa_negative_ttl(
    clock: FakeClock, rcode: int, soa: tuple[int, int], lifetime: int
) -> None:
    cache = make_cache(clock)
    stored = response(rcode=rcode, soa=soa)
    cache.put(KEY, stored)
    hit = cached(cache, stored)
    assert hit is not None
    assert DNSRecord.parse(hit).header.rcode == rcode
    assert ttls(hit) == [lifetime]  # the SOA shows the negative TTL (RFC 2308 3)
    clock.now += lifetime - 1
    assert ttls(cached(cache, stored) or b"") == [1]
    clock.now += 1
    assert cached(cache, stored) is None


def test_negative_max_ttl_and_min_ttl_clamp_negative_answers(clock: FakeClock) -> None:
    cache = make_cache(clock, negative_max_ttl=50)
    stored = response(rcode=RCODE.NXDOMAIN, soa=(3600, 3600))
    cache.put(KEY, stored)
    assert ttls(cached(cache, stored) or b"") == [50]

    raised = make_cache(clock, min_ttl=30)
    short = response(rcode=RCODE.NXDOMAIN, soa=(3600, 5))
    raised.put(KEY, short)
    assert ttls(cached(raised, short) or b"") == [30]


def test_nxdomain_with_cname_is_bounded_by_the_cname_ttl(clock: FakeClock) -> None:
    record = DNSRecord.question("www.example.com").reply()
    record.header.rcode = RCODE.NXDOMAIN
    record.add_answer(RR("www.example.com", QTYPE.CNAME, ttl=40, rdata=CNAME("gone.example.com")))
    record.add_auth(soa_record(600, 300))
    stored = record.pack()
    cache = make_cache(clock)
    cache.put(KEY, stored)
    assert ttls(cached(cache, stored) or b"") == [40, 40]
    clock.now += 40
    assert cached(cache, stored) is None


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(response(rcode=RCODE.SERVFAIL), id="servfail"),
        pytest.param(response(rcode=RCODE.REFUSED), id="refused"),
        pytest.param(response(rcode=RCODE.FORMERR), id="formerr"),
        pytest.param(response(rcode=RCODE.SERVFAIL, soa=(600, 600)), id="servfail-with-soa"),
        pytest.param(response(rcode=RCODE.NXDOMAIN), id="nxdomain-without-soa"),
        pytest.param(response(), id="nodata-without-soa"),
        pytest.param(response(("192.0.2.1", 0)), id="ttl-zero"),
        pytest.param(response(("192.0.2.1", 300), ("192.0.2.2", 0)), id="one-ttl-zero"),
        pytest.param(response(rcode=RCODE.NXDOMAIN, soa=(600, 0)), id="soa-minimum-zero"),
    ],
)
def test_uncacheable_responses(clock: FakeClock, stored: bytes) -> None:
    cache = make_cache(clock, min_ttl=60)  # min_ttl does not override an upstream TTL of 0
    cache.put(KEY, stored)
    assert len(cache) == 0


def test_truncated_response_is_not_cached(clock: FakeClock) -> None:
    record = DNSRecord.question("www.example.com").reply()
    record.header.tc = 1
    record.add_answer(RR("www.example.com", QTYPE.A, ttl=300, rdata=A("192.0.2.1")))
    cache = make_cache(clock)
    cache.put(KEY, record.pack())
    assert len(cache) == 0


def test_lru_evicts_the_least_recently_used(clock: FakeClock) -> None:
    cache = make_cache(clock, max_entries=2)
    stored = response(("192.0.2.1", 300))
    question = question_of(stored)
    cache.put(b"a", stored)
    cache.put(b"b", stored)
    assert cache.get(b"a", QUERY_ID, question) is not None  # "b" is now the oldest
    cache.put(b"c", stored)
    assert (len(cache), cache.evictions) == (2, 1)
    assert cache.get(b"b", QUERY_ID, question) is None
    assert cache.get(b"a", QUERY_ID, question) is not None
    assert cache.get(b"c", QUERY_ID, question) is not None
    cache.put(b"a", stored)  # replacing refreshes, evicts nothing
    assert (len(cache), cache.evictions, cache.max_entries) == (2, 1, 2)
    cache.put(b"d", stored)
    assert cache.get(b"c", QUERY_ID, question) is None


def test_put_replaces_and_restarts_the_countdown(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(KEY, response(("192.0.2.1", 300)))
    clock.now += 100
    fresh = response(("192.0.2.9", 300))
    cache.put(KEY, fresh)
    hit = cached(cache, fresh) or b""
    assert str(DNSRecord.parse(hit).rr[0].rdata) == "192.0.2.9"
    assert ttls(hit) == [300]


def test_clear_keeps_counters(clock: FakeClock) -> None:
    cache = make_cache(clock)
    stored = response(("192.0.2.1", 300))
    cache.put(KEY, stored)
    cached(cache, stored)
    cache.clear()
    assert len(cache) == 0
    assert cached(cache, stored) is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_zero_max_entries_disables_caching(clock: FakeClock) -> None:
    cache = make_cache(clock, max_entries=0)
    cache.put(KEY, response(("192.0.2.1", 300)))
    assert len(cache) == 0


def test_question_of_another_length_is_refused(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(KEY, response(("192.0.2.1", 300)))
    with pytest.raises(ValueError):
        cache.get(KEY, QUERY_ID, DNSRecord.question("ww.example.com").pack()[12:])


def test_get_stale_serves_expired_entries_with_stale_ttl(clock: FakeClock) -> None:
    cache = make_cache(clock, stale_retention=3600)
    stored = response(("192.0.2.1", 300), ("192.0.2.2", 600))
    cache.put(KEY, stored)
    question = question_of(stored)
    clock.now += 400
    assert cache.get(KEY, QUERY_ID, question) is None  # expired: a miss, but retained
    assert len(cache) == 1
    stale = cache.get_stale(KEY, QUERY_ID, question, max_stale=200)
    assert stale is not None
    assert DNSRecord.parse(stale).header.id == 0xBEEF
    assert ttls(stale) == [30, 30]
    assert ttls(cache.get_stale(KEY, QUERY_ID, question, max_stale=200, stale_ttl=5) or b"") == [5, 5]
    assert cache.stale_hits == 2
    assert cache.get_stale(KEY, QUERY_ID, question, max_stale=50) is None  # too old for the caller
    clock.now += 3600
    assert cache.get_stale(KEY, QUERY_ID, question, max_stale=86_400) is None  # past retention
    assert len(cache) == 0


def test_get_stale_serves_fresh_entries_normally(clock: FakeClock) -> None:
    cache = make_cache(clock, stale_retention=60)
    stored = response(("192.0.2.1", 300))
    cache.put(KEY, stored)
    clock.now += 10
    assert ttls(cache.get_stale(KEY, QUERY_ID, question_of(stored), max_stale=60) or b"") == [290]
    assert cache.stale_hits == 0


def test_without_retention_expired_entries_are_dropped(clock: FakeClock) -> None:
    cache = make_cache(clock)
    stored = response(("192.0.2.1", 300))
    cache.put(KEY, stored)
    clock.now += 301
    assert cache.get_stale(KEY, QUERY_ID, question_of(stored), max_stale=3600) is None
    assert len(cache) == 0
