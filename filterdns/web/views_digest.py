"""The weekly digest mail, on the parents' side: turning it on or off on their page, and
the unsubscribe link every digest carries.

An unsubscribe link is ``/family/unsubscribe/<token>`` (made and checked by ``links``).
It works without logging in, for as long as the account exists:

* GET shows what it will do, with a button: link scanners and mail previews that fetch
  every link must not unsubscribe anyone;
* POST unsubscribes. That is the button, and also RFC 8058's one-click unsubscribe, which
  mail programs send from their own servers without a session or a CSRF token: the route
  is exempt from the CSRF check (``signed_url_post``), the signature authorises it.
"""

from __future__ import annotations

from aiohttp import web

from filterdns import i18n
from filterdns.links import token_account, unsubscribe_secret
from filterdns.web.common import accounts_of, control_of, public, redirect, user_of
from filterdns.web.family import family_message, family_page, family_render, is_parent, translator_for
from filterdns.web.security import signed_url_post


async def _link_account(request: web.Request) -> tuple[str, bool] | None:
    """(parent account, digest on) for a genuine link to a parent account that still exists."""
    store = control_of(request).store
    parents = {user.name: user for user in await store.list_users() if is_parent(user)}
    account = token_account(await unsubscribe_secret(store), request.match_info["token"], parents)
    user = parents.get(account) if account else None
    if user is None:
        return None
    profile = await store.get_parent_profile(user.name)
    return user.name, profile.digest if profile else True


async def _dead_link(request: web.Request) -> web.Response:
    return await family_message(request, 404, i18n.N_("This link does not work"), i18n.N_(
        "Check that you copied all of it, or ask the school for a new one."))  # fmt: skip


async def _unsubscribe_page(request: web.Request, account: str, subscribed: bool) -> web.Response:
    translator = await translator_for(request, account)
    context = {"account": account, "subscribed": subscribed}
    return await family_render(request, "parents/unsubscribe.html", context, translator=translator)


@public
async def unsubscribe_page(request: web.Request) -> web.StreamResponse:
    found = await _link_account(request)
    if found is None:
        return await _dead_link(request)
    return await _unsubscribe_page(request, *found)


@signed_url_post
@public
async def unsubscribe(request: web.Request) -> web.StreamResponse:
    """The confirm button, or a mail program's one-click POST (``List-Unsubscribe=One-Click``)."""
    found = await _link_account(request)
    if found is None:
        return await _dead_link(request)
    account, subscribed = found
    if subscribed:
        form = await request.post()
        via = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "link"
        await accounts_of(request).set_digest(account, False, action="parent.unsubscribe", detail={"via": via})
    return await _unsubscribe_page(request, account, False)


@family_page(login=True)
async def save_digest(request: web.Request) -> web.StreamResponse:
    """The "Email me the weekly report" setting on the parent's page."""
    user = user_of(request)
    if not is_parent(user):
        raise web.HTTPForbidden(text="Only parent accounts have a digest setting here.")
    on = (await request.post()).get("digest") == "on"
    await accounts_of(request).set_digest(user.name, on, action="parent.digest", detail={"on": on})
    return redirect("/family?saved=digest")


def setup(app: web.Application) -> None:
    app.router.add_get("/family/unsubscribe/{token}", unsubscribe_page, name="unsubscribe")
    app.router.add_post("/family/unsubscribe/{token}", unsubscribe)
    app.router.add_post("/family/digest", save_digest)
