"""The API's route table type and the OpenAPI 3.1 document made from it.

``api.py`` lists every endpoint once as an ``ApiRoute``; the same table registers the
aiohttp routes, enforces their roles and produces /api/v1/openapi.json, so the document
cannot describe an endpoint that does not exist or miss one that does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from filterdns import __version__
from filterdns.web.common import Handler

API_PREFIX = "/api/v1"
Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
TIME: Schema = {
    "type": "string",
    "description": "unix seconds, or ISO 8601 such as 2026-11-23T10:00 (without a zone: the configured time zone)",
}
ERROR: Schema = {"type": "object", "properties": {"error": STRING}, "required": ["error"]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def obj(required: Sequence[str] = (), **properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    description: str
    where: Literal["query", "path"] = "query"
    schema: Schema = field(default_factory=lambda: dict(STRING))
    required: bool = False


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """One endpoint. ``path`` is below /api/v1 in aiohttp's (and OpenAPI's) ``{name}``
    syntax; ``roles`` may call it (empty: anyone, without logging in)."""

    method: str
    path: str
    handler: Handler
    summary: str
    roles: tuple[str, ...]
    params: tuple[Param, ...] = ()
    body: Schema | None = None
    response: Schema = field(default_factory=lambda: {"type": "object"})
    status: int = 200

    @property
    def full_path(self) -> str:
        return API_PREFIX + self.path


_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "an API token made on the Users page"},
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "filterdns_session",
        "description": "the console's login; state-changing calls then also need the X-CSRF-Token header",
    },
}
_ERRORS = {
    "400": "bad input",
    "401": "not logged in, or an unknown API token",
    "403": "the caller's role or group scope does not allow this",
}


def _operation(route: ApiRoute) -> dict[str, Any]:
    path_names = {part[1:-1] for part in route.path.split("/") if part.startswith("{")}
    parameters = [
        {
            "name": p.name,
            "in": p.where,
            "description": p.description,
            "required": p.required or p.where == "path",
            "schema": p.schema,
        }
        for p in route.params
    ]
    missing = path_names - {p.name for p in route.params if p.where == "path"}
    if missing:
        raise ValueError(f"{route.method} {route.path}: path parameters {sorted(missing)} are not described")
    roles = ", ".join(route.roles) if route.roles else "anyone"
    operation: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "description": f"Roles: {roles}.",
        "parameters": parameters,
        "responses": {
            str(route.status): {
                "description": "success",
                **({"content": {"application/json": {"schema": route.response}}} if route.status != 204 else {}),
            },
            **{
                code: {"description": text, "content": {"application/json": {"schema": ERROR}}}
                for code, text in _ERRORS.items()
            },
        },
    }
    if route.roles:
        operation["security"] = [{"bearer": []}, {"session": []}]
    else:
        operation["security"] = []
    if route.body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.body}}}
    return operation


def document(routes: Sequence[ApiRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 description of ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.full_path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "filterdns console API",
            "version": __version__,
            "description": "What the staff console does, for scripts. Authenticate with "
            "`Authorization: Bearer <token>`; a token acts with its user's role and groups.",
        },
        "paths": paths,
        "components": {"securitySchemes": _SECURITY_SCHEMES},
    }
