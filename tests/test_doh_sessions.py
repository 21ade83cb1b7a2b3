"""The HTTP/2 and HTTP/1.1 sides of DoH in process, against real client-side protocol
machines (h2, h11), for what the end-to-end tests cannot steer: flow control that holds an
answer back, answers that come later than the request, HTTP/1.1 pipelining in order."""

from __future__ import annotations

import asyncio
import base64

import dns.message
import dns.rrset
import h2.config
import h2.settings
import h2.connection
import h2.events
import h11

from filterdns.server.doh import H1Session
from filterdns.server.doh_h2 import H2Session
from filterdns.server.doh_request import Reply, decode_request, dns_response_headers


def answer_for(message: bytes) -> bytes:
    query = dns.message.from_wire(message)
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "TXT", '"' + "x" * 200 + '"'))
    return response.to_wire()


class FakeConnection:
    """What a session needs of ``DohConnection``: write, close, and the DoH exchange, here
    answered at once or, for names starting with "later", from a task."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.tasks: list[asyncio.Task] = []

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def exchange(self, method: bytes, target: bytes, headers: list, body: bytes, reply: Reply) -> asyncio.Task | None:
        content_type = dict(headers).get(b"content-type")
        message = decode_request(method, target, content_type, body).message
        answer = answer_for(message)
        if dns.message.from_wire(message).question[0].name.to_text().startswith("later"):
            async def later() -> None:
                await asyncio.sleep(0.01)
                reply(200, dns_response_headers(answer), answer)

            task = asyncio.get_running_loop().create_task(later())
            self.tasks.append(task)
            return task
        reply(200, dns_response_headers(answer), answer)
        return None

    def take(self) -> bytes:
        data = bytes(self.written)
        self.written.clear()
        return data


def get_path(name: str) -> bytes:
    wire = dns.message.make_query(name, "TXT").to_wire()
    return b"/dns-query?dns=" + base64.urlsafe_b64encode(wire).rstrip(b"=")


def h2_pair(window: int = 65535) -> tuple[FakeConnection, H2Session, h2.connection.H2Connection]:
    fake = FakeConnection()
    session = H2Session(fake)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.local_settings = h2.settings.Settings(client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    client.initiate_connection()
    session.data_received(client.data_to_send())
    client.receive_data(fake.take())
    session.data_received(client.data_to_send())  # the client's SETTINGS ACK
    client.receive_data(fake.take())
    return fake, session, client


def ask(client: h2.connection.H2Connection, name: str) -> int:
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"dns.test"),
                                    (b":path", get_path(name))], end_stream=True)
    return stream_id


def bodies(events: list) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for event in events:
        if isinstance(event, h2.events.DataReceived):
            found[event.stream_id] = found.get(event.stream_id, b"") + event.data
    return found


def test_an_answer_larger_than_the_clients_window_waits_for_a_window_update() -> None:
    fake, session, client = h2_pair(window=100)
    stream_id = ask(client, "big.example")
    session.data_received(client.data_to_send())
    events = client.receive_data(fake.take())
    first = bodies(events)[stream_id]
    assert len(first) == 100 and not any(isinstance(e, h2.events.StreamEnded) for e in events)
    client.acknowledge_received_data(100, stream_id)
    client.increment_flow_control_window(1000, stream_id)
    session.data_received(client.data_to_send())
    events = client.receive_data(fake.take())
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)
    message = dns.message.from_wire(first + bodies(events)[stream_id])
    assert message.question[0].name.to_text() == "big.example."


async def test_a_late_answer_goes_to_its_stream_and_a_reset_one_is_never_sent() -> None:
    fake, session, client = h2_pair()
    kept, dropped, quick = ask(client, "later-1.example"), ask(client, "later-2.example"), ask(client, "now.example")
    session.data_received(client.data_to_send())
    client.reset_stream(dropped)
    session.data_received(client.data_to_send())
    assert fake.tasks[1].cancelled() or fake.tasks[1].cancelling()
    await asyncio.gather(*fake.tasks, return_exceptions=True)
    got = bodies(client.receive_data(fake.take()))
    assert sorted(got) == [kept, quick]
    assert dns.message.from_wire(got[kept]).question[0].name.to_text() == "later-1.example."


def test_http1_pipelined_requests_are_answered_in_order() -> None:
    fake = FakeConnection()
    session = H1Session(fake)
    requests = b"".join(
        b"GET " + get_path(name) + b" HTTP/1.1\r\nhost: dns.test\r\n\r\n" for name in ("a.example", "b.example")
    )
    session.data_received(requests)
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(fake.take())
    names = []
    for _ in range(2):
        response, data = client.next_event(), client.next_event()
        assert isinstance(response, h11.Response) and response.status_code == 200
        names.append(dns.message.from_wire(bytes(data.data)).question[0].name.to_text())
        assert isinstance(client.next_event(), h11.EndOfMessage)
        client.start_next_cycle()
        client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        client.send(h11.EndOfMessage())
    assert names == ["a.example.", "b.example."] and not fake.closed


def test_http1_garbage_gets_400_and_the_connection_closes() -> None:
    fake = FakeConnection()
    H1Session(fake).data_received(b"\x16\x03\x01 not http at all\r\n\r\n")
    assert fake.written.startswith(b"HTTP/1.1 400 ") and fake.closed
