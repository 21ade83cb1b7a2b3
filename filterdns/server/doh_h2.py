"""The HTTP/2 side of DoH: the ``h2`` library does the framing, HPACK and flow control; this
class turns its events into ``DohConnection.exchange`` calls and the answers into frames.

Every answer produced while a batch of frames is being read is written with that batch's
single ``transport.write``. Abuse is bounded: at most ``MAX_STREAMS`` concurrent streams
(SETTINGS_MAX_CONCURRENT_STREAMS; h2 refuses more), request bodies no larger than a DNS
message, and a client that resets more streams than it lets finish (CVE-2023-44487, "rapid
reset") is sent GOAWAY and dropped; a reset stream's upstream wait is cancelled, so resets
free no more than they cost. A protocol error ends only that connection.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded, StreamReset, WindowUpdated
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings

from filterdns.server.doh_request import MAX_DNS_MESSAGE, Headers, HttpError, reply_error

if TYPE_CHECKING:
    from filterdns.server.doh import DohConnection

MAX_STREAMS = 100
MAX_HEADER_LIST = 16384
# Resets tolerated before the ratio to finished streams is looked at.
RESET_ALLOWANCE = 50

_CONFIG = H2Configuration(
    client_side=False, header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False
)


class H2Session:
    def __init__(self, connection: "DohConnection"):
        self._connection = connection
        self._h2 = H2Connection(config=_CONFIG)
        self._h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
            },
        )
        self._h2.initiate_connection()
        self._streams: dict[int, tuple[list[tuple[bytes, bytes]], bytearray]] = {}
        self._unsent: dict[int, bytes] = {}  # answer bodies waiting for flow-control window
        self._waiting: dict[int, asyncio.Task] = {}  # streams whose answer waits for an upstream
        self._receiving = False
        self._closed = False
        self._finished = 0
        self._resets = 0
        connection.write(self._h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            events = self._h2.receive_data(data)
        except ProtocolError:
            self._goaway(ErrorCodes.PROTOCOL_ERROR)
            return
        self._receiving = True
        try:
            for event in events:
                self._on_event(event)
        finally:
            self._receiving = False
        if not self._closed:
            self._connection.write(self._h2.data_to_send())

    def _on_event(self, event: object) -> None:
        kind = event.__class__
        if kind is RequestReceived:
            self._streams[event.stream_id] = (event.headers, bytearray())  # type: ignore[attr-defined]
        elif kind is DataReceived:
            stream_id = event.stream_id  # type: ignore[attr-defined]
            self._h2.acknowledge_received_data(event.flow_controlled_length, stream_id)  # type: ignore[attr-defined]
            stream = self._streams.get(stream_id)
            if stream is not None:
                stream[1].extend(event.data)  # type: ignore[attr-defined]
                if len(stream[1]) > MAX_DNS_MESSAGE:
                    del self._streams[stream_id]
                    self._refuse(stream_id, HttpError(413, "The request body is larger than any DNS message."))
        elif kind is StreamEnded:
            stream = self._streams.pop(event.stream_id, None)  # type: ignore[attr-defined]
            if stream is not None:
                self._dispatch(event.stream_id, *stream)  # type: ignore[attr-defined]
        elif kind is StreamReset:
            stream_id = event.stream_id  # type: ignore[attr-defined]
            self._streams.pop(stream_id, None)
            self._unsent.pop(stream_id, None)
            task = self._waiting.pop(stream_id, None)
            if task is not None:
                task.cancel()
            self._resets += 1
            if self._resets > RESET_ALLOWANCE and self._resets > self._finished:
                self._goaway(ErrorCodes.ENHANCE_YOUR_CALM)
        elif kind is WindowUpdated:
            for stream_id in list(self._unsent):
                self._send_body(stream_id, self._unsent.pop(stream_id))
        elif kind is ConnectionTerminated:
            self._closed = True
            self._connection.write(self._h2.data_to_send())
            self._connection.close()

    def _dispatch(self, stream_id: int, headers: list[tuple[bytes, bytes]], body: bytearray) -> None:
        method = path = b""
        for name, value in headers:
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
        task = self._connection.exchange(method, path, headers, bytes(body), partial(self._reply, stream_id))
        if task is not None:
            self._waiting[stream_id] = task

    def _refuse(self, stream_id: int, error: HttpError) -> None:
        reply_error(partial(self._reply, stream_id), error)

    def _reply(self, stream_id: int, status: int, headers: Headers, body: bytes) -> None:
        self._waiting.pop(stream_id, None)
        if self._closed:
            return
        try:
            self._h2.send_headers(stream_id, [(b":status", b"%d" % status), *headers])
            self._send_body(stream_id, body)
        except (StreamClosedError, ProtocolError):
            return  # the client gave up on this stream meanwhile
        self._finished += 1
        if not self._receiving:
            self._connection.write(self._h2.data_to_send())

    def _send_body(self, stream_id: int, body: bytes) -> None:
        """Send as much of ``body`` as flow control allows; keep the rest for a window update."""
        h2 = self._h2
        try:
            while True:
                size = min(h2.local_flow_control_window(stream_id), h2.max_outbound_frame_size, len(body))
                if size <= 0 and body:
                    self._unsent[stream_id] = body
                    return
                h2.send_data(stream_id, body[:size], end_stream=size == len(body))
                body = body[size:]
                if not body:
                    return
        except (StreamClosedError, ProtocolError):
            self._unsent.pop(stream_id, None)

    def _goaway(self, code: ErrorCodes) -> None:
        self._closed = True
        try:
            self._h2.close_connection(error_code=code)
        except ProtocolError:
            pass
        self._connection.write(self._h2.data_to_send())
        self._connection.close()
