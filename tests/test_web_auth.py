"""Console accounts: login and logout, lockout and throttling, sessions (rotation, expiry,
hashes only in the store), password rules and rehashing, the one-time setup link, and the
``filterdns user`` command. Real HTTP on 127.0.0.1 against a real SQLite store."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from yarl import URL

from filterdns import users_cli
from filterdns.accounts.rules import password_problems
from filterdns.config.loader import load_config
from filterdns.store import AuditFilter, User, open_store
from filterdns.web import WebSettings
from filterdns.web.auth import LoginThrottle, safe_next
from tests.support.web import PASSWORD, Console, make_console


@pytest.fixture
async def console(tmp_path: Path):
    async with make_console(tmp_path) as console:
        yield console


async def audit_actions(console: Console, action: str) -> list:
    return await console.store.list_audit(AuditFilter(action=action))


# --- login and logout --------------------------------------------------------------------------


async def test_pages_need_a_login(console: Console):
    response = await console.client.get("/querylog?group=7b", allow_redirects=False)
    assert response.status == 303
    location = URL(response.headers["Location"])
    assert (location.path, location.query["next"]) == ("/login", "/querylog?group=7b")
    api = await console.client.get("/api/v1/events")
    assert api.status == 401
    assert (await api.json())["error"]


async def test_login_success_starts_a_session_and_is_audited(console: Console):
    response = await console.login("ada")
    assert response.status == 303
    assert response.headers["Location"] == "/"
    page = await console.client.get("/")
    assert page.status == 200
    assert "ada · admin" in await page.text()
    [entry] = await audit_actions(console, "login")
    assert (entry.actor, entry.target, entry.detail["client"]) == ("ada", "ada", "127.0.0.1")


async def test_login_returns_to_the_page_asked_for_but_never_off_site(console: Console):
    token = await console.csrf("/login")
    response = await console.post("/login", {"username": "ada", "password": PASSWORD, "next": "/audit?actor=x"}, token)
    assert response.headers["Location"] == "/audit?actor=x"
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "audit",
                   "/\t/evil.example/x", "/\n/evil.example/x", "/\r\n/evil.example", " //evil.example"):
        assert safe_next(target) == "/", target
    assert safe_next("/querylog?name=é&group=7b") == "/querylog?name=%C3%A9&group=7b"


@pytest.mark.parametrize("smuggled", ["/%09/evil.example/x", "/%0a/evil.example/x", "/%0d%0a/evil.example/x"])
async def test_a_next_with_tabs_or_newlines_goes_home_after_login(console: Console, smuggled: str):
    """Chromium drops tabs and newlines from a Location, so "/\t/evil.example/x" would leave
    the site; a newline must not break the response after the session is made."""
    page = await console.page(f"/login?next={smuggled}")
    assert 'name="next" value="/"' in page
    token = await console.csrf("/login")
    next_value = URL(f"/?n={smuggled}").query["n"]
    response = await console.post("/login", {"username": "ada", "password": PASSWORD, "next": next_value}, token)
    assert (response.status, response.headers["Location"]) == (303, "/")


async def test_failed_login_is_audited_with_name_and_address_never_the_password(console: Console):
    response = await console.login("ada", "not-the-password-at-all")
    assert response.status == 401
    assert "Wrong user name or password" in await response.text()
    response = await console.login("nobody", "also-a-guess-123")
    assert response.status == 401
    entries = await audit_actions(console, "login.failed")
    assert [(e.target, e.detail["client"], e.detail["reason"]) for e in reversed(entries)] == [
        ("ada", "127.0.0.1", "wrong password"),
        ("nobody", "127.0.0.1", "unknown user"),
    ]
    dumped = json.dumps([e.detail for e in entries]) + "".join(e.actor + e.target for e in entries)
    assert "not-the-password" not in dumped and "also-a-guess" not in dumped
    assert (await console.client.get("/", allow_redirects=False)).status == 303


async def test_lockout_after_five_failures_even_for_the_right_password(console: Console):
    for _ in range(4):
        assert (await console.login("tom", "wrong-password-guess")).status == 401
    assert not (await console.store.get_user("tom")).locked_until
    assert (await console.login("tom", "wrong-password-guess")).status == 401
    user = await console.store.get_user("tom")
    assert user.locked_until is not None
    assert 15 * 60 - 1 <= user.locked_until - (await console.store.list_audit())[0].time <= 15 * 60 + 1
    assert (await console.login("tom")).status == 401  # the right password, but locked
    reasons = [e.detail["reason"] for e in await audit_actions(console, "login.failed")]
    assert reasons[:2] == ["account locked", "account locked now"]
    # An admin's password reset lifts the lock.
    token = await console.logged_in("ada")
    new_password = "a-brand-new-passphrase"
    response = await console.post("/users/tom/password", {"password": new_password, "password2": new_password}, token)
    assert response.status == 303
    assert (await console.login("tom", new_password)).status == 303


async def test_a_successful_login_resets_the_failure_count(console: Console):
    """Three typos and a good login, three times over: twelve attempts in all, nine of them
    wrong, but never five in a row, so the account never locks."""
    for _ in range(3):
        for _ in range(3):
            assert (await console.login("tom", "wrong-password-guess")).status == 401
        assert (await console.login("tom")).status == 303
        console.client.session.cookie_jar.clear()
        assert not (await console.store.get_user("tom")).locked_until
    assert (await console.store.get_user("tom")).failed_logins == 0


async def test_a_lock_ends_by_itself(tmp_path: Path):
    async with make_console(tmp_path, settings=WebSettings(lock_after=2, lock_minutes=0.025)) as console:
        for _ in range(2):
            await console.login("tom", "wrong-password-guess")
        assert (await console.login("tom")).status == 401
        await asyncio.sleep(1.6)
        assert (await console.login("tom")).status == 303


async def test_good_logins_do_not_count_against_the_address(tmp_path: Path):
    """Each attempt is counted before its password is checked; a right one takes its count
    back, so a busy staff-room PC logging people in all day is never throttled."""
    async with make_console(tmp_path, settings=WebSettings(ip_failures=3)) as console:
        for _ in range(5):
            assert (await console.login("tom")).status == 303
            console.client.session.cookie_jar.clear()


async def test_too_many_failures_from_one_address_are_throttled(tmp_path: Path):
    async with make_console(tmp_path, settings=WebSettings(ip_failures=3)) as console:
        for name in ("ada", "tom", "vic"):  # one guess each: no account locks
            assert (await console.login(name, "wrong-password-guess")).status == 401
        response = await console.login("ada")
        assert response.status == 429
        assert "Too many failed logins" in await response.text()
        for _ in range(3):  # and it stays so past the limit, however many more come
            assert (await console.login("tom", "another-guess")).status == 429


async def test_parallel_guesses_cannot_outrun_the_lockout(tmp_path: Path):
    """29 wrong passwords and then the right one, all sent at once: the lock taken by the
    fifth wrong guess holds for the right one too (counted before the hash, not after)."""
    async with make_console(tmp_path, settings=WebSettings(ip_failures=100)) as console:
        token = await console.csrf("/login")

        async def attempt(password: str) -> int:
            form = {"username": "tom", "password": password, "csrf_token": token}
            async with console.client.post("/login", data=form, allow_redirects=False) as response:
                return response.status

        statuses = await asyncio.gather(*(attempt(f"wrong-guess-number-{i}") for i in range(29)), attempt(PASSWORD))
        assert statuses == [401] * 30
        user = await console.store.get_user("tom")
        assert user.locked_until is not None
        reasons = [e.detail["reason"] for e in await audit_actions(console, "login.failed")]
        assert reasons.count("account locked now") == 1 and reasons.count("wrong password") == 4


async def test_a_parallel_burst_is_throttled_like_a_sequence(tmp_path: Path):
    async with make_console(tmp_path, settings=WebSettings(ip_failures=20, lock_after=1000)) as console:
        token = await console.csrf("/login")

        async def attempt(i: int) -> int:
            form = {"username": "nobody", "password": f"guess-number-{i}", "csrf_token": token}
            async with console.client.post("/login", data=form, allow_redirects=False) as response:
                return response.status

        statuses = await asyncio.gather(*(attempt(i) for i in range(39)))
        assert sorted(statuses) == [401] * 20 + [429] * 19


def test_throttle_window_slides_and_memory_is_bounded():
    throttle = LoginThrottle(limit=2, window_seconds=10, max_addresses=2)
    assert throttle.reserve("10.0.0.1", 100) == 0
    assert throttle.wait_seconds("10.0.0.1", 101) == 0
    assert throttle.reserve("10.0.0.1", 102) == 0
    assert throttle.reserve("10.0.0.1", 103) == pytest.approx(7)  # refused, and not counted
    assert throttle.wait_seconds("10.0.0.1", 110.5) == 0  # the first failure left the window
    throttle.forgive("10.0.0.1", 102)  # a right password takes its attempt back
    assert throttle.reserve("10.0.0.1", 110.5) == 0
    throttle.reserve("10.0.0.2", 111)
    throttle.reserve("10.0.0.3", 112)
    assert len(throttle._failures) == 2


async def test_disabled_users_cannot_log_in_and_lose_their_sessions(console: Console):
    await console.login("vic")
    vic_cookie = console.session_cookie()
    console.client.session.cookie_jar.clear()
    token = await console.logged_in("ada")
    asked = await console.post("/users/vic/disable", {}, token)
    assert asked.status == 200 and "vic can no longer log in" in await asked.text()
    assert not (await console.store.get_user("vic")).disabled  # asking changes nothing
    assert (await console.post("/users/vic/disable", {"confirmed": "yes"}, token)).status == 303
    console.client.session.cookie_jar.clear()
    assert (await console.login("vic")).status == 401
    console.client.session.cookie_jar.update_cookies({"filterdns_session": vic_cookie})
    assert (await console.client.get("/", allow_redirects=False)).status == 303


async def test_logout_ends_the_session(console: Console):
    token = await console.logged_in("ada")
    cookie = console.session_cookie()
    response = await console.post("/logout", {}, token)
    assert response.status == 303 and response.headers["Location"] == "/login"
    # the browser is told to forget the session cookie (not some other one)
    cleared = [c for c in response.headers.getall("Set-Cookie") if c.startswith("filterdns_session=")]
    assert cleared and ("Max-Age=0" in cleared[0] or "expires=Thu, 01 Jan 1970" in cleared[0]), cleared
    assert await console.store.get_session(hashlib.sha256(cookie.encode()).hexdigest()) is None
    console.client.session.cookie_jar.update_cookies({"filterdns_session": cookie})
    assert (await console.client.get("/", allow_redirects=False)).status == 303
    [entry] = await audit_actions(console, "logout")
    assert (entry.actor, entry.detail["client"]) == ("ada", "127.0.0.1")


# --- sessions ------------------------------------------------------------------------------------


async def test_login_rotates_the_session_and_stores_only_its_hash(console: Console):
    await console.logged_in("ada")
    first = console.session_cookie()
    await console.logged_in("tom")  # logging in again, as anyone, replaces the session
    second = console.session_cookie()
    assert first and second and first != second
    store = console.store
    assert await store.get_session(hashlib.sha256(first.encode()).hexdigest()) is None
    session = await store.get_session(hashlib.sha256(second.encode()).hexdigest())
    assert session is not None and session.user == "tom"
    assert await store.get_session(second) is None  # the token itself is not a key
    # The old cookie is worthless now.
    console.client.session.cookie_jar.clear()
    console.client.session.cookie_jar.update_cookies({"filterdns_session": first})
    assert (await console.client.get("/", allow_redirects=False)).status == 303


async def test_a_planted_cookie_never_becomes_a_login(console: Console):
    console.client.session.cookie_jar.update_cookies({"filterdns_session": "chosen-by-the-attacker"})
    await console.logged_in("ada")
    assert console.session_cookie() != "chosen-by-the-attacker"


async def test_session_cookie_flags(console: Console):
    token = await console.csrf("/login")
    response = await console.post("/login", {"username": "ada", "password": PASSWORD}, token)
    cookie = response.headers.getall("Set-Cookie")
    session = next(c for c in cookie if c.startswith("filterdns_session="))
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/" in session
    assert "Secure" not in session


async def test_secure_cookies_under_tls(tmp_path: Path):
    async with make_console(tmp_path, secure_cookies=True) as console:
        response = await console.client.get("/login")
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("__Host-filterdns_login=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def test_idle_sessions_end(tmp_path: Path):
    async with make_console(tmp_path, settings=WebSettings(idle_minutes=0.025)) as console:
        await console.logged_in("ada")
        assert (await console.client.get("/", allow_redirects=False)).status == 200
        await asyncio.sleep(1.6)
        assert (await console.client.get("/", allow_redirects=False)).status == 303


async def test_sessions_end_after_their_lifetime_however_busy(tmp_path: Path):
    async with make_console(tmp_path, settings=WebSettings(session_hours=1 / 3600)) as console:
        await console.logged_in("ada")
        for _ in range(3):
            await asyncio.sleep(0.4)
            await console.client.get("/")
        assert (await console.client.get("/", allow_redirects=False)).status == 303


# --- passwords -------------------------------------------------------------------------------------


def test_password_rules():
    assert password_problems("plum-kettle-harbour-42", "ada") == []
    assert password_problems("short-1", "ada") == ["a password needs at least 12 characters"]
    assert password_problems("xxmrsmith-is-here", "MrSmith") == ["a password must not contain the user name"]
    assert password_problems("Password1234", "ada") == ["that password is one of the first an attacker tries"]
    assert password_problems("aaaaaaaaaaaaaaa", "ada") == ["that password is one of the first an attacker tries"]


async def test_weak_passwords_are_refused_when_adding_a_user(console: Console):
    token = await console.logged_in("ada")
    for password in ("short", "password1234", "newteacher-2026"):
        response = await console.post(
            "/users", {"username": "newteacher", "role": "teacher", "password": password, "password2": password}, token
        )
        assert response.status == 422
    assert await console.store.get_user("newteacher") is None


async def test_hash_is_upgraded_when_parameters_change(console: Console):
    old = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1).hash("another-fine-passphrase")
    await console.store.create_user("old", "viewer", old)
    assert (await console.login("old", "another-fine-passphrase")).status == 303
    stored = (await console.store.get_user("old")).password_hash
    assert stored != old and "m=1024,t=1,p=1" in stored
    assert console.passwords.hasher.verify(stored, "another-fine-passphrase")


# --- the first admin ---------------------------------------------------------------------------------


async def test_setup_token_works_once(tmp_path: Path):
    async with make_console(tmp_path, setup_token="one-time-setup-token", users=False) as console:
        assert (await console.client.get("/setup?token=wrong")).status == 404
        assert (await console.client.get("/setup")).status == 404  # no token at all
        page = await console.client.get("/setup?token=one-time-setup-token")
        assert page.status == 200
        token = await console.csrf("/setup?token=one-time-setup-token")
        weak = {"token": "one-time-setup-token", "username": "head", "password": "short", "password2": "short"}
        assert (await console.post("/setup", weak, token)).status == 422
        good = {**weak, "password": PASSWORD, "password2": PASSWORD}
        response = await console.post("/setup", good, token)
        assert response.status == 303
        user = await console.store.get_user("head")
        assert user is not None and user.role == "admin"
        assert "head · admin" in await (await console.client.get("/")).text()
        [entry] = await audit_actions(console, "user.add")
        assert (entry.actor, entry.target) == ("setup", "head")
        # Spent: neither the page nor the form works again, even logged out.
        console.client.session.cookie_jar.clear()
        assert (await console.client.get("/setup?token=one-time-setup-token")).status == 404
        token = await console.csrf("/login")
        assert (await console.post("/setup", {**good, "username": "second"}, token)).status == 404
        assert await console.store.get_user("second") is None


async def test_setup_token_is_void_once_an_admin_exists(tmp_path: Path):
    async with make_console(tmp_path, setup_token="one-time-setup-token") as console:
        assert (await console.client.get("/setup?token=one-time-setup-token")).status == 404


# --- roles ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "visible", "hidden"),
    [
        ("ada", {"nav-dashboard", "nav-check", "nav-overrides", "nav-querylog", "nav-audit", "nav-users"}, set()),
        ("tom", {"nav-dashboard", "nav-check", "nav-overrides", "nav-querylog"}, {"nav-audit", "nav-users"}),
        ("vic", {"nav-dashboard", "nav-audit", "nav-users", "nav-querylog"}, set()),
    ],
)
async def test_navigation_shows_only_what_the_role_may_use(console: Console, name, visible, hidden):
    await console.logged_in(name)
    text = await (await console.client.get("/")).text()
    for item in visible:
        assert f'id="{item}"' in text
    for item in hidden:
        assert f'id="{item}"' not in text


async def test_parents_get_their_family_page_and_no_console(console: Console):
    await console.logged_in("pat")
    front = await console.client.get("/", allow_redirects=False)
    assert front.status == 303 and front.headers["Location"] == "/family"
    for path in ("/querylog", "/check?name=a.example&group=7b", "/api/v1/events"):
        assert (await console.client.get(path)).status == 403


# --- the user command ------------------------------------------------------------------------------------


def run_user_command(tmp_path: Path, argv: list[str], stdin: str = "", monkeypatch=None) -> int:
    parser = argparse.ArgumentParser()
    users_cli.add_parser(parser.add_subparsers(dest="command"))
    config_path = tmp_path / "config.yaml"
    config_path.write_text("groups: {7b: {networks: [10.0.7.0/24]}}\n")
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return users_cli.main(parser.parse_args(["user", "--data-dir", str(tmp_path), *argv]), load_config(config_path))


async def stored_users(tmp_path: Path) -> dict:
    from filterdns.store import StoreConfig

    store = await open_store(StoreConfig(), tmp_path)
    try:
        return {u.name: u for u in await store.list_users()}
    finally:
        await store.close()


def test_user_command_adds_lists_changes_and_disables(tmp_path: Path, monkeypatch, capsys):
    assert run_user_command(tmp_path, ["add", "head", "--role", "admin", "--password-stdin"], PASSWORD + "\n", monkeypatch) == 0
    prompts = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(prompts))
    assert run_user_command(tmp_path, ["add", "tom", "--role", "teacher", "--groups", "7b,nope"]) == 0
    assert "no group 'nope'" in capsys.readouterr().err
    assert run_user_command(tmp_path, ["list"]) == 0
    assert capsys.readouterr().out.splitlines() == ["head\tadmin\t-\tactive", "tom\tteacher\t7b,nope\tactive"]
    users = asyncio.run(stored_users(tmp_path))
    assert PASSWORD not in users["head"].password_hash
    assert PasswordHasher().verify(users["head"].password_hash, PASSWORD)

    new = "entirely-new-secret-99"
    assert run_user_command(tmp_path, ["passwd", "tom", "--password-stdin"], new + "\n", monkeypatch) == 0
    assert run_user_command(tmp_path, ["disable", "tom"]) == 0
    tom = asyncio.run(stored_users(tmp_path))["tom"]
    assert tom.disabled and PasswordHasher().verify(tom.password_hash, new)


def test_the_only_admin_locked_out_is_unlocked_from_the_shell(tmp_path: Path, monkeypatch, capsys):
    assert run_user_command(tmp_path, ["add", "head", "--role", "admin", "--password-stdin"], PASSWORD + "\n", monkeypatch) == 0

    async def lock() -> None:
        store = await open_store(load_config(tmp_path / "config.yaml").node.store, tmp_path)
        try:
            for _ in range(5):
                await store.reserve_login_attempt("head", lock_after=5)
        finally:
            await store.close()

    asyncio.run(lock())
    assert asyncio.run(stored_users(tmp_path))["head"].locked_until is not None
    assert run_user_command(tmp_path, ["unlock", "head"]) == 0
    assert capsys.readouterr().out.strip().endswith("head unlocked")
    head = asyncio.run(stored_users(tmp_path))["head"]
    assert (head.locked_until, head.failed_logins) == (None, 0)
    assert run_user_command(tmp_path, ["unlock", "ghost"]) == 2


async def test_the_login_page_says_how_a_lock_is_lifted_without_saying_whose(console: Console):
    for name in ("tom", "nobody"):
        for _ in range(5):
            response = await console.login(name, "wrong-password-guess")
        text = await response.text()
        assert response.status == 401 and "filterdns user unlock NAME" in text and "15 minutes" in text


def test_user_command_refuses_bad_input(tmp_path: Path, monkeypatch, capsys):
    assert run_user_command(tmp_path, ["add", "head", "--role", "admin", "--password-stdin"], "short\n", monkeypatch) == 2
    assert "at least 12 characters" in capsys.readouterr().err
    answers = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert run_user_command(tmp_path, ["add", "head", "--role", "admin"]) == 2
    assert "differ" in capsys.readouterr().err
    assert run_user_command(tmp_path, ["disable", "ghost"]) == 2
    assert run_user_command(tmp_path, ["add", "bad name", "--role", "viewer", "--password-stdin"], PASSWORD, monkeypatch) == 2
    assert asyncio.run(stored_users(tmp_path)) == {}


async def test_a_viewer_given_groups_still_changes_nothing_in_them(console: Console):
    """Groups let a teacher act for their classes; a viewer with groups only reads."""
    await console.add_user("val", "viewer", ("7b",))
    token = await console.logged_in("val")
    response = await console.post("/overrides", {"group": "7b", "kind": "allow", "category": "games", "minutes": "30"}, token)
    assert response.status == 403
    assert console.control.active_overrides() == []


@pytest.mark.parametrize("repeated", ["aaaa-different-but-long-enough", "zzzz-different-but-long-enough"])
async def test_passwords_typed_differently_twice_are_refused(console: Console, repeated: str):
    """Whichever of the two sorts first: a new account and a password change alike."""
    token = await console.logged_in("ada")
    password = "mmmm-the-new-passphrase"
    new = {"username": "newteacher", "role": "teacher", "password": password, "password2": repeated}
    assert (await console.post("/users", new, token)).status == 422
    assert await console.store.get_user("newteacher") is None
    response = await console.post("/users/tom/password", {"password": password, "password2": repeated}, token)
    assert response.status == 422
    assert (await console.login("tom", password)).status == 401


def test_only_admins_and_a_groups_own_teachers_change_it():
    from filterdns.web.auth import can_change_group

    def user(role: str, groups: tuple[str, ...] = ()) -> User:
        return User(name="x", role=role, password_hash="", groups=groups, disabled=False, failed_logins=0,
                    locked_until=None, created=0.0)  # fmt: skip

    assert can_change_group(user("admin"), "7b")
    assert can_change_group(user("teacher", ("7b",)), "7b")
    assert not can_change_group(user("teacher", ("8c",)), "7b")
    assert not can_change_group(user("viewer", ("7b",)), "7b")
    assert not can_change_group(user("parent", ("7b",)), "7b")


async def test_a_good_login_takes_back_only_its_own_count(tmp_path: Path):
    """Two wrong guesses, then someone's right password from the same address: the two
    guesses still count, so an attacker cannot wipe the address's record with a login of
    their own between guesses."""
    async with make_console(tmp_path, settings=WebSettings(ip_failures=3, lock_after=1000)) as console:
        for _ in range(2):
            assert (await console.login("ada", "wrong-password-guess")).status == 401
        assert (await console.login("vic")).status == 303
        console.client.session.cookie_jar.clear()
        assert (await console.login("ada", "wrong-password-guess")).status == 401
        assert (await console.login("ada", "wrong-password-guess")).status == 429


async def test_an_address_may_try_again_once_its_failures_are_out_of_the_window(tmp_path: Path):
    async with make_console(tmp_path, settings=WebSettings(ip_failures=2, ip_window_minutes=0.02, lock_after=1000)) as console:
        for _ in range(2):
            assert (await console.login("ada", "wrong-password-guess")).status == 401
        assert (await console.login("ada")).status == 429
        await asyncio.sleep(1.4)  # the window is 1.2 s
        assert (await console.login("ada")).status == 303


async def test_logging_out_without_a_session_just_goes_to_the_login_page(console: Console):
    token = await console.csrf("/login")
    response = await console.post("/logout", {}, token)
    assert response.status == 303 and response.headers["Location"] == "/login"


async def test_without_a_setup_token_the_setup_page_is_closed(tmp_path: Path):
    """No token was printed (an admin existed at start, later removed): nobody may make an
    admin from a browser, whatever token they try."""
    async with make_console(tmp_path, users=False) as console:
        for token in ("", "anything", "x" * 43):
            assert (await console.client.get(f"/setup?token={token}")).status == 404
