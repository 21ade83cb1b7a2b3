"""DNS over HTTPS and DNS over TLS end to end, through real clients (kdig, curl, dnspython,
the h2 library as a hostile client) against a real ``filterdns serve`` with a test CA.

The school here: staff at 127.0.0.1, year 7 at 127.0.0.2, social media blocked for year 7
during lessons (a schedule open now). The roster names one pupil in year 7 and one teacher;
over DoH and DoT they are told apart by the id in the URL or the TLS server name alone.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime

import dns.message
import dns.query
import dns.rcode
import h2.config
import h2.connection
import h2.events
import pytest

from filterdns.identity.hashing import chromeos_hash, fill_template
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.server import FilterDnsProcess, base_config
from tests.support.tls import HOSTNAME, Pki, make_pki
from tests.test_e2e_policy import windows_around

STAFF, YEAR7, PROXY = "127.0.0.1", "127.0.0.2", "127.0.0.3"
SALT = "riverside-2026"
ROSTER = f"""pupil_id,display_name,group,email,device_ids
p-101,Ann Example,year7,ann@school.test,cb-17
t-1,Tess Teacher,staff,tess@school.test,
"""
BLOCKED = "0.0.0.0"
H2 = dns.query.HTTPVersion.H2
H1 = dns.query.HTTPVersion.H1


def school_config(upstream_port: int, pki: Pki, **overrides) -> dict:
    lessons, _ = windows_around(datetime.now(UTC))
    config = base_config(
        upstream_port,
        timezone="UTC",
        categories={"social": {"domains": ["tiktok.com"]}, "games": {"domains": ["roblox.com"]}},
        schedules={"lessons": {"timezone": "UTC", "weekly": {"daily": [lessons]}}},
        groups={
            "staff": {"networks": [f"{STAFF}/32"], "bypass_protection": False},
            "year7": {"networks": [f"{YEAR7}/32"], "block": ["games"], "rules": [{"during": "lessons", "block": ["social"]}]},
        },
        default_group="staff",
        doh={"listen": ["127.0.0.1:0"], "tls_cert": str(pki.cert), "tls_key": str(pki.key)},
        dot={"listen": ["127.0.0.1:0"]},
        identity={"hostname": HOSTNAME, "salt": SALT},
        log={"level": "info", "query_log": "queries.jsonl"},
    )
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as fake:
        fake.set_rule("slow.example.org", Behaviour(delay=3.0))
        yield fake


@pytest.fixture(scope="module")
def server(upstream, pki, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("encrypted")
    (workdir / "data").mkdir()
    (workdir / "data" / "roster.csv").write_text(ROSTER)
    with FilterDnsProcess(school_config(upstream.port, pki), workdir) as process:
        process.doh = process.encrypted_port("HTTPS")
        process.dot = process.encrypted_port("TLS")
        yield process


def tls_context(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))


def over_doh(server, pki, name: str, path: str = "/dns-query", *, post: bool = True, version=H2, rdtype="A"):
    query = dns.message.make_query(name, rdtype)
    return dns.query.https(
        query, "127.0.0.1", port=server.doh, path=path, post=post, verify=tls_context(pki), timeout=5,
        http_version=version,
    )


def over_dot(server, pki, name: str, server_name: str = HOSTNAME, rdtype="A"):
    query = dns.message.make_query(name, rdtype)
    return dns.query.tls(
        query, "127.0.0.1", port=server.dot, ssl_context=tls_context(pki), server_hostname=server_name, timeout=5
    )


def over_udp(server, name: str, source: str, rdtype="A"):
    return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=server.port, source=source, timeout=5)


def addresses(response: dns.message.Message) -> list[str]:
    return sorted(item.address for rrset in response.answer for item in rrset if hasattr(item, "address"))


def comparable(response: dns.message.Message) -> tuple:
    return response.rcode(), sorted(rrset.to_text() for rrset in response.answer)


@pytest.mark.parametrize("name", ["www.tiktok.com", "roblox.com", "example.org"])
@pytest.mark.parametrize(("pupil_id", "source"), [("p-101", YEAR7), ("t-1", STAFF)])
def test_doh_and_dot_answers_match_udp_for_the_same_identity(server, pki, name, pupil_id, source) -> None:
    udp = comparable(over_udp(server, name, source))
    assert comparable(over_doh(server, pki, name, f"/dns-query/{pupil_id}")) == udp
    assert comparable(over_dot(server, pki, name, f"{pupil_id}.{HOSTNAME}")) == udp


@pytest.mark.parametrize("version", [H1, H2], ids=["http1.1", "http2"])
@pytest.mark.parametrize("post", [False, True], ids=["get", "post"])
def test_dnspython_get_and_post_over_both_http_versions(server, pki, version, post) -> None:
    assert addresses(over_doh(server, pki, "www.tiktok.com", "/dns-query/p-101", post=post, version=version)) == [BLOCKED]
    assert addresses(over_doh(server, pki, "www.tiktok.com", "/dns-query/t-1", post=post, version=version)) != [BLOCKED]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=20)


@pytest.mark.skipif(shutil.which("kdig") is None, reason="kdig (knot-dnsutils) is not installed")
def test_kdig_over_https_http2_and_tls_tells_pupil_from_teacher(server, pki) -> None:
    tls = [f"+tls-ca={pki.ca}", f"+tls-hostname={HOSTNAME}"]
    for pupil_id, blocked in (("p-101", True), ("t-1", False)):
        doh = _run(["kdig", f"@127.0.0.1", "-p", str(server.doh), f"+https=/dns-query/{pupil_id}", *tls,
                    "www.tiktok.com", "A", "+short"])
        assert doh.returncode == 0, doh.stderr
        dot = _run(["kdig", f"@127.0.0.1", "-p", str(server.dot), "+tls", f"+tls-ca={pki.ca}",
                    f"+tls-sni={pupil_id}.{HOSTNAME}", f"+tls-hostname={pupil_id}.{HOSTNAME}",
                    "www.tiktok.com", "A", "+short"])
        assert dot.returncode == 0, dot.stderr
        for result in (doh, dot):
            assert (result.stdout.split() == [BLOCKED]) is blocked, result.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_resolves_through_doh_with_the_pupils_identity(server, pki) -> None:
    def address_tried(pupil_id: str) -> str:
        result = _run([
            "curl", "-sv", "--connect-timeout", "1", "--cacert", str(pki.ca),
            "--resolve", f"{HOSTNAME}:{server.doh}:127.0.0.1",
            "--doh-url", f"https://{HOSTNAME}:{server.doh}/dns-query/{pupil_id}",
            "-o", "/dev/null", "http://www.tiktok.com:9/",
        ])
        # The first "Trying" is the DoH server; the one to port 9 is the name resolved by it.
        tried = [line for line in result.stderr.splitlines() if "Trying" in line and ":9..." in line]
        assert tried, result.stderr
        return tried[0].split("Trying ")[1].rsplit(":", 1)[0]

    assert address_tried("p-101") == BLOCKED
    assert address_tried("t-1") not in (BLOCKED, "")


def test_a_chromeos_template_filled_and_hashed_as_chromeos_does(server, pki) -> None:
    template = f"https://{HOSTNAME}/dns-query/${{USER_EMAIL}}-${{DEVICE_DIRECTORY_ID}}{{?dns}}"
    for email, device, blocked in (("ann@school.test", "", True), ("tess@school.test", "", False),
                                    ("nobody@school.test", "cb-17", True)):
        url = fill_template(template, SALT, email=email, device_id=device).removesuffix("{?dns}")
        path = url.split(HOSTNAME, 1)[1]
        assert (addresses(over_doh(server, pki, "www.tiktok.com", path)) == [BLOCKED]) is blocked, email


def test_an_unknown_id_gets_the_strictest_pupil_group_and_no_id_the_address_group(server, pki) -> None:
    assert addresses(over_doh(server, pki, "www.tiktok.com", "/dns-query/stranger")) == [BLOCKED]
    assert addresses(over_dot(server, pki, "www.tiktok.com", f"stranger.{HOSTNAME}")) == [BLOCKED]
    # No id: known by address as over UDP (127.0.0.1 is staff here).
    assert addresses(over_doh(server, pki, "www.tiktok.com")) != [BLOCKED]
    assert addresses(over_dot(server, pki, "www.tiktok.com")) != [BLOCKED]
    assert not any("stranger" in line for line in server.log_lines)


def test_query_events_carry_the_pupil_never_an_unknown_id(server, pki) -> None:
    over_doh(server, pki, "pupil-event.example.org", "/dns-query/ann@school.test")
    over_dot(server, pki, "pupil-event.example.org", f"cb-17.{HOSTNAME}")
    over_doh(server, pki, "stranger-event.example.org", "/dns-query/mallory@evil.test")
    log_file = server.workdir / "queries.jsonl"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = [json.loads(line) for line in log_file.read_text().splitlines()] if log_file.exists() else []
        mine = [e for e in events if e["name"].endswith("-event.example.org")]
        if len(mine) >= 3:
            break
        time.sleep(0.2)
    by_transport = {(e["transport"], e["name"]): e for e in mine}
    assert by_transport["doh", "pupil-event.example.org"]["pupil"] == "p-101"
    assert by_transport["dot", "pupil-event.example.org"]["pupil"] == "p-101"
    stranger = by_transport["doh", "stranger-event.example.org"]
    assert stranger["pupil"].startswith("unknown:") and stranger["group"] == "year7"
    assert "mallory" not in log_file.read_text()


def https_request(server, pki, method: str, target: str, body: bytes | None = None, headers: dict | None = None):
    connection = http.client.HTTPSConnection("127.0.0.1", server.doh, context=_hostname_context(pki), timeout=5)
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _hostname_context(pki: Pki) -> ssl.SSLContext:
    context = tls_context(pki)
    context.check_hostname = False  # http.client sends the IP as SNI; the CA still vouches
    return context


def test_cache_control_is_the_answers_smallest_ttl(server, pki) -> None:
    query = base64.urlsafe_b64encode(dns.message.make_query("ttl.example.org", "A").to_wire()).rstrip(b"=").decode()
    status, headers, body = https_request(server, pki, "GET", f"/dns-query?dns={query}")
    assert status == 200 and headers["content-type"] == "application/dns-message"
    ttl = min(rrset.ttl for rrset in dns.message.from_wire(body).answer)
    assert headers["cache-control"] == f"max-age={ttl}"


@pytest.mark.parametrize(
    ("method", "target", "body", "headers", "status"),
    [
        ("GET", "/dns-query?dns=%%%not-base64", None, {}, 400),
        ("POST", "/dns-query", b"\x12\x34" + b"\0" * 20, {"content-type": "text/plain"}, 415),
        ("POST", "/dns-query", b"\0" * 70_000, {"content-type": "application/dns-message"}, 413),
        ("POST", "/dns-query", b"\xff" * 40, {"content-type": "application/dns-message"}, 400),
        ("GET", "/admin", None, {}, 404),
        ("DELETE", "/dns-query", None, {}, 405),
    ],
)
def test_malformed_http1_requests_are_refused_and_the_server_carries_on(server, pki, method, target, body, headers, status):
    got, _, text = https_request(server, pki, method, target, body, headers)
    assert got == status and text.endswith(b".\n")
    assert addresses(over_doh(server, pki, "www.tiktok.com", "/dns-query/p-101")) == [BLOCKED]


class RawH2:
    """A bare HTTP/2 client over TLS, for requests no polite client would send."""

    def __init__(self, server, pki):
        context = tls_context(pki)
        context.set_alpn_protocols(["h2"])
        self.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", server.doh), timeout=5),
                                        server_hostname=HOSTNAME)
        assert self.sock.selected_alpn_protocol() == "h2"
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.h2.data_to_send())

    def get(self, name: str, *, reset: bool = False) -> int:
        wire = dns.message.make_query(name, "A").to_wire()
        query = base64.urlsafe_b64encode(wire).rstrip(b"=")
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", HOSTNAME.encode()),
                                         (b":path", b"/dns-query?dns=" + query)], end_stream=True)
        if reset:
            self.h2.reset_stream(stream_id)
        return stream_id

    def events_until(self, wanted: type, deadline: float = 5.0) -> list:
        seen: list = []
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                data = self.sock.recv(65535)
            except (TimeoutError, ConnectionError, ssl.SSLError):
                break
            if not data:
                break
            seen.extend(self.h2.receive_data(data))
            self.flush()
            if any(isinstance(event, wanted) for event in seen):
                break
        return seen

    def close(self) -> None:
        self.sock.close()


def test_http2_rapid_reset_gets_goaway_while_others_are_served(server, pki) -> None:
    abuser = RawH2(server, pki)
    try:
        for i in range(300):
            abuser.get(f"slow-{i}.slow.example.org", reset=True)
            if i % 20 == 19:
                abuser.flush()
        abuser.flush()
        events = abuser.events_until(h2.events.ConnectionTerminated)
    finally:
        abuser.close()
    ended = [event for event in events if isinstance(event, h2.events.ConnectionTerminated)]
    assert ended and ended[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert addresses(over_doh(server, pki, "www.tiktok.com", "/dns-query/p-101")) == [BLOCKED]


def test_http2_protocol_garbage_ends_only_that_connection(server, pki) -> None:
    polite = RawH2(server, pki)
    rude = RawH2(server, pki)
    try:
        rude.sock.sendall(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\xff\xff\xff\xff" * 3)  # bad WINDOW_UPDATEs
        assert any(isinstance(e, h2.events.ConnectionTerminated) for e in rude.events_until(h2.events.ConnectionTerminated))
        stream_id = polite.get("www.tiktok.com")
        polite.flush()
        events = polite.events_until(h2.events.StreamEnded)
        data = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived) and e.stream_id == stream_id)
        assert addresses(dns.message.from_wire(data)) != [BLOCKED]  # 127.0.0.1 without id: staff
    finally:
        polite.close()
        rude.close()


def test_too_many_streams_at_once_are_refused_without_harming_others(server, pki) -> None:
    greedy = RawH2(server, pki)
    try:
        for i in range(150):
            greedy.get(f"many-{i}.slow.example.org")
        greedy.flush()
        events = greedy.events_until(h2.events.ConnectionTerminated, deadline=2.0)
    finally:
        greedy.close()
    refused = [e for e in events if isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated))]
    assert refused, events
    assert addresses(over_dot(server, pki, "www.tiktok.com", f"p-101.{HOSTNAME}")) == [BLOCKED]


def test_a_roster_imported_with_the_cli_is_used_without_a_restart(server, pki, tmp_path) -> None:
    new = tmp_path / "roster.csv"
    new.write_text(ROSTER + "p-300,Cleo New,year7,cleo@school.test,\n")
    result = subprocess.run(
        [sys.executable, "-m", "filterdns", "roster", "-c", str(server.config_path), "import", str(new)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if addresses(over_doh(server, pki, "roblox.com", "/dns-query/cleo@school.test")) == [BLOCKED]:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the new roster was not picked up")


def test_plain_http_only_from_a_trusted_proxy_which_names_the_client(upstream, pki, tmp_path) -> None:
    config = school_config(upstream.port, pki, doh={"listen": ["127.0.0.1:0"], "trusted_proxies": [f"{PROXY}/32"]})
    del config["dot"]
    with FilterDnsProcess(config, tmp_path) as process:
        port = process.encrypted_port("HTTPS")
        wire = dns.message.make_query("www.tiktok.com", "A").to_wire()

        def ask(source: str, forwarded: str) -> bytes:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
            try:
                connection.request("POST", "/dns-query", body=wire,
                                   headers={"content-type": "application/dns-message", "x-forwarded-for": forwarded})
                return connection.getresponse().read()
            finally:
                connection.close()

        with pytest.raises((ConnectionError, http.client.HTTPException)):
            ask(STAFF, YEAR7)  # not a trusted proxy: no plain HTTP at all
        assert addresses(dns.message.from_wire(ask(PROXY, f"203.0.113.9, {YEAR7}"))) == [BLOCKED]
        assert addresses(dns.message.from_wire(ask(PROXY, STAFF))) != [BLOCKED]


def test_a_new_salt_and_host_name_apply_on_sighup(upstream, pki, tmp_path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "roster.csv").write_text(ROSTER)
    config = school_config(upstream.port, pki)
    with FilterDnsProcess(config, tmp_path) as process:
        process.doh, process.dot = process.encrypted_port("HTTPS"), process.encrypted_port("TLS")
        teacher = "/dns-query/" + chromeos_hash("tess@school.test", "a-new-salt-2027")
        assert addresses(over_doh(process, pki, "www.tiktok.com", teacher)) == [BLOCKED]  # nobody yet
        config["identity"] = {"hostname": f"edu.{HOSTNAME}", "salt": "a-new-salt-2027"}
        process.write_config(config)
        process.reload()
        deadline = time.monotonic() + 15
        while addresses(over_doh(process, pki, "www.tiktok.com", teacher)) == [BLOCKED]:
            assert time.monotonic() < deadline, "the new salt was not used"
            time.sleep(0.5)
        # DoT names now end in the new host name: the old form names nobody (the address does).
        # The test certificate has no *.edu.dns.school.test: the name is sent, not checked.
        context = _hostname_context(pki)
        query = dns.message.make_query("www.tiktok.com", "A")
        for server_name, blocked in ((f"p-101.edu.{HOSTNAME}", True), (f"p-101.{HOSTNAME}", False)):
            response = dns.query.tls(query, "127.0.0.1", port=process.dot, ssl_context=context,
                                     server_hostname=server_name, timeout=5)
            assert (addresses(response) == [BLOCKED]) is blocked, server_name
