"""Calling a webhook: POST the message's JSON body to its URL.

Redirects are not followed (a POST turned into a GET, or sent somewhere else, is not a
delivery), so a 3xx counts as a failure like any other non-2xx answer. Only public
addresses, or networks the node's ``fetch_allow`` lists, are called (see
:mod:`filterdns.fetching`). Failures are retried with the outbox's backoff, except a URL
that cannot work at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp

from filterdns.config.model import IPNetwork
from filterdns.fetching import FetchRefused, failure_words, fetch_session, status_words
from filterdns.notify import DeliveryError
from filterdns.store import OutboxMessage

USER_AGENT = "filterdns-webhook/1"


async def post_webhook(message: OutboxMessage, *, timeout: float, fetch_allow: Sequence[IPNetwork] = ()) -> None:
    """Deliver ``message`` (``recipient`` is the URL, ``body_text`` the JSON); a 2xx
    answer within ``timeout`` seconds is success, anything else a ``DeliveryError``."""
    url = message.recipient
    if urlsplit(url).scheme not in ("http", "https"):
        raise DeliveryError(f"{url!r} is not an http(s) URL", permanent=True)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **message.headers}
    try:
        async with (
            fetch_session(fetch_allow, timeout=timeout) as session,
            session.post(url, data=message.body_text.encode(), headers=headers, allow_redirects=False) as response,
        ):
            if not 200 <= response.status < 300:
                raise DeliveryError(f"the webhook answered {status_words(response.status)}")
    except TimeoutError as exc:
        raise DeliveryError(f"the webhook did not answer within {timeout:g} s") from exc
    except aiohttp.InvalidURL as exc:
        raise DeliveryError(f"{url!r} is not a valid URL", permanent=True) from exc
    except aiohttp.ClientConnectorError as exc:
        raise DeliveryError(failure_words(exc), permanent=isinstance(exc.os_error, FetchRefused)) from exc
    except aiohttp.ClientError as exc:
        raise DeliveryError(f"the webhook call failed: {failure_words(exc)}") from exc
