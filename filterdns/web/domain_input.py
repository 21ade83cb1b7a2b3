"""Domains typed or pasted into the console's forms: the allow and deny list forms (a
group's and the global ones) and the edit of the policy document they make, and the note
that says so when a form took the name out of a pasted web address (lists, overrides).
Names are read with ``filterdns.names``, the one normaliser.

The forms save and redirect, so the note travels in the redirect's query string. A link
must not make the console claim something it did not do, so the note carries a signature
keyed with the visitor's own session secret (its CSRF token): only a redirect made for
that session shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from filterdns.links import same_secret, signature
from filterdns.names import TypedDomain, typed_domain
from filterdns.policy import document
from filterdns.web.common import principal_of

TOOK = "took"  # query parameter: the name taken from an address, and its signature
Edit = Callable[[dict[str, Any]], dict[str, Any]]
LIST_EDITS: dict[tuple[str, str], Callable[..., dict[str, Any]]] = {
    ("allow", "add"): document.add_to_allow,
    ("allow", "remove"): document.remove_from_allow,
    ("deny", "add"): document.add_to_deny,
    ("deny", "remove"): document.remove_from_deny,
}


def _refused(error: ValueError) -> Edit:
    """An edit that refuses, so a form's typed values still go back into it."""

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        raise error

    return change


def list_change(group: str | None, form: Mapping[str, Any]) -> tuple[str, Edit, dict[str, str] | None]:
    """Add a domain to or remove one from an allow or deny list: a group's, or the global
    one when ``group`` is None. Returns what it does (for the revision comment), the edit,
    and the values to show in the form again if it is refused."""
    which, action = str(form.get("list", "")), str(form.get("action", "add"))
    edit = LIST_EDITS.get((which, action))
    if edit is None:
        raise ValueError("pick the allow or the deny list")
    typed = {f"new_{which}": str(form.get("domain", "")).strip()} if action == "add" else None
    try:
        domain = typed_domain(str(form.get("domain", "")))
    except ValueError as error:
        return f"{action} a domain", _refused(error), typed
    where = "the" if group else "the global"
    taken = f" (from the address {domain.address})" if domain.address else ""
    what = f"{action} {domain.name}{taken} {'to' if action == 'add' else 'from'} {where} {which} list"
    return what, lambda doc: edit(doc, domain.name, group), typed


def name_to_look_up(text: str) -> str:
    """The name a search or check form looks for: what was typed in normal form (a pasted
    address gives its host name), else as typed. DNS names can hold any byte and the query
    log links to them as shown, so a name that is not a hostname is still looked for."""
    try:
        return typed_domain(text).name
    except ValueError:
        return text.strip()


def _session_secret(request: web.Request) -> str:
    principal = principal_of(request)
    return principal.session.csrf_token if principal and principal.session else ""


def took_query(request: web.Request, form: Mapping[str, Any]) -> str:
    """``&took=...`` for the redirect after saving ``form``, when its domain came from an
    address; "" otherwise."""
    try:
        typed = typed_domain(str(form.get("domain", "")))
    except ValueError:
        return ""
    secret = _session_secret(request)
    if not typed.address or not secret:
        return ""
    return "&" + urlencode({TOOK: f"{typed.name}.{signature(secret, TOOK, typed.name)}"})


def took_note(request: web.Request) -> str:
    """The note a redirect from ``took_query`` asks for, if it was made for this session."""
    name, _, proof = request.query.get(TOOK, "").rpartition(".")
    secret = _session_secret(request)
    if not name or not secret or not same_secret(proof, signature(secret, TOOK, name)):
        return ""
    return TypedDomain(name, address="pasted").note


__all__ = ["list_change", "name_to_look_up", "took_note", "took_query"]
