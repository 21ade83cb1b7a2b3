"""The JSON API under /api/v1: the same operations as the pages, with the same rules (the
handlers share the pages' parsing and permission helpers), for scripts and for the few
places where the console's own JavaScript wants data.

``API_ROUTES`` is the single table of endpoints: ``setup`` registers exactly these routes,
wraps each in its role check, and serves the OpenAPI document generated from them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, cast

from aiohttp import web

from filterdns.config.loader import ConfigError
from filterdns.store import DAY, Override
from filterdns.web.auth import require, scope_filter
from filterdns.web.common import (
    CONSOLE_ROLES,
    all_group_names,
    control_of,
    parse_time,
    public,
    user_of,
    zone_of,
)
from filterdns.web.openapi import (
    BOOLEAN,
    INTEGER,
    NUMBER,
    STRING,
    TIME,
    ApiRoute,
    Param,
    array,
    document,
    obj,
)
from filterdns.web.views_audit import audit_filter, before_id
from filterdns.web.views_check import explain_for, explanation_data
from filterdns.web.views_dashboard import Bucket, list_summary, traffic
from filterdns.web.views_overrides import (
    grant,
    parse_override,
    revoke,
    visible_overrides,
)
from filterdns.web.views_querylog import event_filter, page_size
from filterdns.web.views_users import delete_token, issue_token

ADMIN = ("admin",)
READERS = ("admin", "viewer")
CHANGERS = ("admin", "teacher")
MAX_STATS_DAYS = 400


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError("the body must be JSON") from None
    except RecursionError:
        raise ValueError("the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _path_int(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound(text=f"no such {name}") from None


def _override_data(override: Override, now: float) -> dict[str, Any]:
    return {**dataclasses.asdict(override), "seconds_left": max(0.0, override.expires_at - now)}


# --- handlers ---------------------------------------------------------------------------------


async def get_explain(request: web.Request) -> web.Response:
    return web.json_response(explanation_data(explain_for(request, request.query), zone_of(request)))


async def get_events(request: web.Request) -> web.Response:
    where = event_filter(user_of(request), request.query, zone_of(request), control_of(request).config)
    page = await control_of(request).store.search_events(
        where, limit=page_size(request.query), cursor=request.query.get("cursor") or None
    )
    return web.json_response({"events": page.rows, "next_cursor": page.next_cursor})


async def get_stats(request: web.Request) -> web.Response:
    query = request.query
    zone = zone_of(request)
    now = time.time()
    until = parse_time(query.get("until"), zone) or now
    since = parse_time(query.get("since"), zone) or until - DAY
    if not 0 < until - since <= MAX_STATS_DAYS * DAY:
        raise ValueError(f"the range must be positive and at most {MAX_STATS_DAYS} days")
    bucket = query.get("bucket", "hour")
    if bucket not in ("hour", "day"):
        raise ValueError("bucket is hour or day")
    scope = scope_filter(user_of(request), query.get("group") or None, all_group_names(control_of(request)))
    store = control_of(request).store
    rows = await traffic(store, since, until, scope, cast(Bucket, bucket), zone)
    return web.json_response(
        {
            "since": since,
            "until": until,
            "bucket": bucket,
            "series": [{"start": r.start, "group": r.group, **r.counts} for r in rows],
            "top_categories": await store.top_blocked(since, until, groups=scope, by="category"),
            "top_names": await store.top_blocked(since, until, groups=scope, by="name"),
        }
    )


async def list_overrides(request: web.Request) -> web.Response:
    now = time.time()
    overrides = visible_overrides(user_of(request), control_of(request).active_overrides())
    return web.json_response({"overrides": [_override_data(o, now) for o in overrides]})


async def add_override(request: web.Request) -> web.Response:
    override = await grant(request, parse_override(await _json_body(request)))
    return web.json_response(_override_data(override, time.time()), status=201)


async def delete_override(request: web.Request) -> web.Response:
    await revoke(request, _path_int(request, "id"))
    return web.Response(status=204)


async def get_policy(request: web.Request) -> web.Response:
    revision, text = control_of(request).policy_document()
    return web.json_response({"revision": revision, "document": text})


async def put_policy(request: web.Request) -> web.Response:
    body = await _json_body(request)
    document_ = body.get("document")
    if not isinstance(document_, (str, dict)):
        raise ValueError("document is the policy as YAML text or as an object")
    try:
        revision = await control_of(request).apply_policy(
            document_, author=user_of(request).name, comment=str(body.get("comment", ""))
        )
    except ConfigError as exc:
        return web.json_response({"error": "the policy has problems", "problems": exc.problems}, status=422)
    return web.json_response({"revision": revision})


async def list_revisions(request: web.Request) -> web.Response:
    revisions = await control_of(request).store.list_revisions(
        limit=page_size(request.query, 50), before_id=before_id(request.query)
    )
    return web.json_response(
        {"revisions": [{k: v for k, v in dataclasses.asdict(r).items() if k != "yaml_text"} for r in revisions]}
    )


async def get_revision(request: web.Request) -> web.Response:
    revision = await control_of(request).store.get_revision(_path_int(request, "id"))
    if revision is None:
        raise web.HTTPNotFound(text="no such revision")
    return web.json_response(dataclasses.asdict(revision))


async def rollback(request: web.Request) -> web.Response:
    revision = await control_of(request).rollback(_path_int(request, "id"), author=user_of(request).name)
    return web.json_response({"revision": revision})


async def list_audit(request: web.Request) -> web.Response:
    size = page_size(request.query)
    entries = await control_of(request).store.list_audit(
        audit_filter(request.query, zone_of(request)), limit=size + 1, before_id=before_id(request.query)
    )
    more = len(entries) > size
    del entries[size:]
    return web.json_response(
        {"entries": [dataclasses.asdict(e) for e in entries], "next_before": entries[-1].id if more else None}
    )


async def list_tokens(request: web.Request) -> web.Response:
    tokens = await control_of(request).store.list_api_tokens()
    return web.json_response(
        {"tokens": [{k: v for k, v in dataclasses.asdict(t).items() if k != "token_hash"} for t in tokens]}
    )


async def add_token(request: web.Request) -> web.Response:
    body = await _json_body(request)
    token, secret = await issue_token(request, str(body.get("user", "")), str(body.get("name", "")))
    return web.json_response(
        {"id": token.id, "user": token.user, "name": token.name, "created": token.created, "token": secret},
        status=201,
    )


async def remove_token(request: web.Request) -> web.Response:
    if not await delete_token(request, _path_int(request, "id")):
        raise web.HTTPNotFound(text="no such token")
    return web.Response(status=204)


async def get_health(request: web.Request) -> web.Response:
    control = control_of(request)
    return web.json_response(
        {
            "upstreams": [dataclasses.asdict(u) for u in control.upstream_health()],
            "lists": list_summary(control),
            "store": control.store_health(),  # from memory: answers at once while the store hangs
        }
    )


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(document(API_ROUTES))


# --- the table ----------------------------------------------------------------------------------

_GROUP = Param("group", "limit to one group (teachers: one of theirs)")
_LIMIT = Param("limit", "rows per page (1-500)", schema=INTEGER)
_BEFORE = Param("before", "page back from this id", schema=INTEGER)
_ID = Param("id", "the item's id", "path", INTEGER)
_OVERRIDE = obj(
    ["id", "group", "kind", "domain", "category", "created_by", "created_at", "expires_at", "seconds_left"],
    id=INTEGER, group=STRING, kind={"enum": ["allow", "block"]}, domain=STRING, category=STRING,
    created_by=STRING, created_at=NUMBER, expires_at=NUMBER, revoked=BOOLEAN, seconds_left=NUMBER,
)  # fmt: skip
_REVISION = obj(id=INTEGER, created=NUMBER, node=STRING, author=STRING, comment=STRING)
_TOP = array(obj(key=STRING, count=INTEGER))

API_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET", "/explain", get_explain, "Why a name gets its verdict for a group or client", CONSOLE_ROLES,
        params=(
            Param("name", "the domain name", required=True), _GROUP,
            Param("client", "a client IP address (picks the group; wins over group)"),
            Param("at", "when (default: now)", schema=TIME),
        ),
        response=obj(
            name=STRING, group=STRING, at=NUMBER, listings=array(obj(suffix=STRING, categories=array(STRING))),
            list_entries=array(obj(entry=STRING, list=STRING)), blocked_categories=array(STRING),
            windows=array(obj(schedule=STRING, label=STRING, start=NUMBER, end=NUMBER)),
            decision=obj(action=STRING, reason=STRING, category=STRING, detail=STRING,
                         schedule_window=STRING, rewrite_target=STRING),
            lines=array(STRING),
        ),
    ),
    ApiRoute(
        "GET", "/events", get_events, "Search the query log, newest first", CONSOLE_ROLES,
        params=(
            _GROUP, Param("client", "client address"), Param("pupil", "pupil or device id from the roster (DoH/DoT)"),
            Param("domain", "a name and the names under it"),
            Param("contains", "names containing this text"),
            Param("verdict", "allowed, blocked, rewritten or error"), Param("category", "matched category"),
            Param("since", "from (inclusive)", schema=TIME), Param("until", "to (exclusive)", schema=TIME),
            _LIMIT, Param("cursor", "next_cursor of the previous page"),
        ),
        response=obj(events=array({"type": "object"}), next_cursor={"type": ["string", "null"]}),
    ),
    ApiRoute(
        "GET", "/stats", get_stats, "Queries per hour or day by group and verdict, and the most blocked",
        CONSOLE_ROLES,
        params=(
            Param("since", "from (default: a day before until)", schema=TIME),
            Param("until", "to (default: now)", schema=TIME),
            Param("bucket", "hour (UTC hours) or day (local days)", schema={"enum": ["hour", "day"]}), _GROUP,
        ),
        response=obj(
            since=NUMBER, until=NUMBER, bucket=STRING,
            series=array(obj(start=NUMBER, group=STRING, allowed=INTEGER, blocked=INTEGER,
                             rewritten=INTEGER, error=INTEGER)),
            top_categories=_TOP, top_names=_TOP,
        ),
    ),
    ApiRoute("GET", "/overrides", list_overrides, "Overrides in force", CONSOLE_ROLES,
             response=obj(overrides=array(_OVERRIDE))),
    ApiRoute(
        "POST", "/overrides", add_override, "Allow or block a domain or category for a group for a while",
        CHANGERS, status=201, response=_OVERRIDE,
        body=obj(["group", "minutes"], group=STRING, kind={"enum": ["allow", "block"]}, domain=STRING,
                 category=STRING, minutes={"type": "integer", "minimum": 1, "maximum": 1440}),
    ),
    ApiRoute("DELETE", "/overrides/{id}", delete_override, "Revoke an override", CHANGERS,
             params=(_ID,), status=204),
    ApiRoute("GET", "/policy", get_policy, "The policy document and its revision", READERS,
             response=obj(revision=INTEGER, document=STRING)),
    ApiRoute(
        "PUT", "/policy", put_policy, "Replace the policy (applied at once, on every node)", ADMIN,
        body=obj(["document"], document={"type": ["string", "object"]}, comment=STRING),
        response=obj(revision=INTEGER),
    ),
    ApiRoute("GET", "/revisions", list_revisions, "Policy revisions, newest first", READERS,
             params=(_LIMIT, _BEFORE), response=obj(revisions=array(_REVISION))),
    ApiRoute("GET", "/revisions/{id}", get_revision, "One policy revision with its text", READERS,
             params=(_ID,), response=obj(**_REVISION["properties"], yaml_text=STRING)),
    ApiRoute("POST", "/revisions/{id}/rollback", rollback, "Make a revision's policy current again", ADMIN,
             params=(_ID,), response=obj(revision=INTEGER)),
    ApiRoute(
        "GET", "/audit", list_audit, "The audit log, newest first", READERS,
        params=(Param("actor", "who"), Param("action", "e.g. login.failed"), Param("target", "what"),
                Param("since", "from", schema=TIME), Param("until", "to", schema=TIME), _LIMIT, _BEFORE),
        response=obj(entries=array({"type": "object"}), next_before={"type": ["integer", "null"]}),
    ),
    ApiRoute("GET", "/tokens", list_tokens, "API tokens (never their secrets)", ADMIN,
             response=obj(tokens=array(obj(id=INTEGER, user=STRING, name=STRING, created=NUMBER,
                                           last_used={"type": ["number", "null"]})))),
    ApiRoute(
        "POST", "/tokens", add_token, "Create an API token; the secret is in this answer only", ADMIN,
        status=201, body=obj(["user", "name"], user=STRING, name=STRING),
        response=obj(id=INTEGER, user=STRING, name=STRING, created=NUMBER, token=STRING),
    ),
    ApiRoute("DELETE", "/tokens/{id}", remove_token, "Delete an API token", ADMIN, params=(_ID,), status=204),
    ApiRoute("GET", "/health", get_health, "Upstreams, lists and store", CONSOLE_ROLES,
             response=obj(upstreams=array({"type": "object"}), lists=array({"type": "object"}),
                          store={"type": "object"})),
    ApiRoute("GET", "/openapi.json", get_openapi, "This document", ()),
)  # fmt: skip


def _wrap(route: ApiRoute):
    """The route's handler behind its role check, with bad input as 400."""
    handler = route.handler

    async def checked(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None

    checked.__name__ = handler.__name__
    return require(*route.roles)(checked) if route.roles else public(checked)


def setup(app: web.Application) -> None:
    for route in API_ROUTES:
        app.router.add_route(route.method, route.full_path, _wrap(route))
