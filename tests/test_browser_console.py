"""The staff console in a real browser, against a real ``filterdns serve`` process.

Each test does what a person does (logs in through the form, ticks boxes, presses buttons)
in Debian's Chromium, then checks the effect where it matters: on real DNS answers sent to
the running server from the address of a class's network. One server, one fake upstream and
one browser serve the whole module, so the tests are written not to depend on each other's
order: an override ends within its test, and the one lasting policy change (social blocked
for year7) is to something no other test asks about; names a test searches for are its own.

Setup: year7 (127.0.0.2) blocks games at all times; year8 (127.0.0.3) blocks games and
social. Accounts are made with ``filterdns user add`` before the server starts: ada (admin)
and tom (teacher of year7).
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.message
import dns.name
import dns.query
import pytest

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

from playwright.sync_api import Browser  # noqa: E402

from tests.support.browser import CHROMIUM, DESKTOP, PHONE, Console, Site, chromium, console, running_site, store_call  # noqa: E402
from tests.support.fake_upstream import address_for  # noqa: E402
from tests.support.server import base_config  # noqa: E402

if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian package chromium)", allow_module_level=True)

YEAR7 = "127.0.0.2"
YEAR8 = "127.0.0.3"
BLOCKED = ["0.0.0.0"]  # the default block mode, null_ip
PASSWORD = "plum-kettle-harbour-42"
ADMIN = "ada"
TEACHER = "tom"
ACCOUNTS = ((ADMIN, "admin", ""), (TEACHER, "teacher", "year7"))
# The query log's columns: time, client, pupil, group, name, type, verdict, why.
QUERYLOG_NAME = 4
HOSTILE_LABEL = b"<img src=x onerror=alert(1)>"
# Names are shown in DNS presentation form: a space in a label reads \032 (RFC 1035 5.1).
HOSTILE_SHOWN = HOSTILE_LABEL.decode().replace(" ", "\\032")
# The product's promise from a saved change to DNS answers, in seconds. A loaded 2-core CI
# machine can miss it without the product being wrong, so the tests wait up to the ceiling
# and report a figure over the goal as a warning (shown in pytest's summary) instead of failing.
POLICY_TO_DNS = 1.0
POLICY_TO_DNS_CEILING = 10.0


def console_config(upstream_port: int) -> dict:
    return base_config(
        upstream_port,
        web={"listen": "127.0.0.1:0"},
        categories={
            "games": {"description": "Online games", "domains": ["games.example"]},
            "social": {"description": "Social networks", "domains": ["social.example"]},
            "video": {"description": "Video sites", "domains": ["video.example"]},
        },
        schedules={"lessons": {"weekly": {"mon-fri": ["08:45-10:30", "10:50-15:20"]}}},
        groups={
            "year7": {"description": "Year 7", "networks": [f"{YEAR7}/32"], "block": ["games"]},
            "year8": {
                "description": "Year 8",
                "networks": [f"{YEAR8}/32"],
                "block": ["games", "social"],
                "rules": [{"during": "lessons", "block": ["video"]}],
            },
        },
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("console"), console_config, ACCOUNTS, PASSWORD) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def a_records(site: Site, name: str | dns.name.Name, client: str) -> list[str]:
    """The A answer the server gives ``client`` (a class's address) for ``name``."""
    query = dns.message.make_query(name, "A")
    response = dns.query.udp(query, "127.0.0.1", port=site.server.port, timeout=2, source=client)
    return [rr.to_text() for rrset in response.answer for rr in rrset]


def wait_for(predicate: Callable[[], bool], timeout: float, since: float | None = None) -> float:
    """Seconds from ``since`` (default: now) until ``predicate()`` holds; fails after ``timeout``."""
    started = time.monotonic() if since is None else since
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - started


def reaches_dns(predicate: Callable[[], bool], since: float | None = None) -> float:
    """Seconds until a console change shows in DNS answers: fails past the ceiling, warns
    past the product's goal (so the measured figure is in the test report either way)."""
    took = wait_for(predicate, POLICY_TO_DNS_CEILING, since=since)
    if took > POLICY_TO_DNS:
        warnings.warn(f"a console change reached DNS in {took:.2f} s, over the {POLICY_TO_DNS} s goal", stacklevel=2)
    return took


@contextmanager
def signed_in(site: Site, browser: Browser, name: str, viewport: dict[str, int] = DESKTOP) -> Iterator[Console]:
    """A tab logged in as ``name``, which must never have raised a JavaScript dialog."""
    with console(browser, site.url, viewport) as tab:
        tab.log_in(name, PASSWORD)
        yield tab
        assert tab.dialogs == []


@pytest.fixture
def admin(site: Site, browser: Browser) -> Iterator[Console]:
    with signed_in(site, browser, ADMIN) as tab:
        yield tab


@pytest.fixture
def admin_on_phone(site: Site, browser: Browser) -> Iterator[Console]:
    with signed_in(site, browser, ADMIN, PHONE) as tab:
        yield tab


@pytest.fixture
def teacher(site: Site, browser: Browser) -> Iterator[Console]:
    with signed_in(site, browser, TEACHER) as tab:
        yield tab


@pytest.fixture
def no_overrides_left(site: Site) -> Iterator[None]:
    """Revoke whatever a failed override test left in force, so it cannot leak into others."""
    yield
    for override in store_call(site, "list_active_overrides"):
        store_call(site, "revoke_override", override.id)


def test_an_admin_blocks_a_category_and_dns_follows_within_a_second(site: Site, admin: Console) -> None:
    name = "www.social.example"
    assert a_records(site, name, YEAR7) == [address_for(name)]

    page = admin.open("/groups/year7")
    assert page.is_checked("#block-games") and not page.is_checked("#block-social")
    page.check("#block-social")
    page.fill("#categories-comment", "no social media in year 7")
    saved = time.monotonic()  # the clock runs from pressing Save
    page.click("#save-categories")
    page.wait_for_url(re.compile(r"/groups/year7\?saved=\d+"))
    reaches_dns(lambda: a_records(site, name, YEAR7) == BLOCKED, since=saved)
    assert a_records(site, "www.video.example", YEAR7) == [address_for("www.video.example")]
    revision = int(re.search(r"saved=(\d+)", page.url).group(1))
    assert page.is_checked("#block-social")

    admin.open("/revisions")
    entry = page.locator(f"#revision-{revision}")
    assert "(in force)" in entry.locator("h2").inner_text()
    assert "ada" in entry.inner_text() and "no social media in year 7" in entry.inner_text()
    assert any("social" in line for line in entry.locator(".diff .add").all_inner_texts())

    admin.open("/audit")
    page.fill("#a-action", "policy.change")
    page.click("#audit-search")
    page.wait_for_url(re.compile(r"action=policy.change"))
    assert f"revision {revision}" in admin.column("#audit-results", 3)
    row = page.locator("#audit-results tbody tr", has_text=f"revision {revision}")
    assert row.locator("td").nth(1).inner_text() == ADMIN
    assert "no social media in year 7" in row.inner_text()


def test_a_teacher_grants_an_override_in_one_click_and_it_ends(
    site: Site, teacher: Console, no_overrides_left: None
) -> None:
    name = "www.games.example"
    allowed = [address_for(name)]
    assert a_records(site, name, YEAR7) == BLOCKED
    page = teacher.page

    # A teacher of year7 never gets year8 to pick, wherever a group is picked.
    for path, picker in (("/", "#dashboard-group"), ("/check", "#check-group"), ("/querylog", "#q-group")):
        teacher.open(path)
        assert "year8" not in teacher.options(picker), path
    assert page.goto("/querylog?group=year8").status == 403  # nor by typing the address
    teacher.open("/overrides")
    assert teacher.options("#override-group") == ["year7"]

    # One click: the form's defaults are "allow" for the teacher's group; pick the category
    # and the shortest duration on offer.
    shortest = min(teacher.options("#override-minutes"), key=int)
    page.select_option("#override-category", "games")
    page.select_option("#override-minutes", shortest)
    granted = time.monotonic()
    page.click("#override-submit")
    page.wait_for_url(re.compile(r"/overrides\?done=added"))
    reaches_dns(lambda: a_records(site, name, YEAR7) == allowed, since=granted)
    assert a_records(site, name, YEAR8) == BLOCKED  # only the teacher's group
    row = page.locator("#active-overrides tbody tr[data-expires]")
    assert row.count() == 1
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == "year7" and cells[1] == "Allow games (category)" and cells[2] == TEACHER
    assert cells[4] == f"{shortest} min"

    # Revoked: blocked again at once.
    revoked = time.monotonic()
    row.locator("button", has_text="Revoke").click()
    page.wait_for_url(re.compile(r"/overrides\?done=revoked"))
    reaches_dns(lambda: a_records(site, name, YEAR7) == BLOCKED, since=revoked)
    assert "No overrides in force." in page.inner_text("#active-overrides")

    # One that runs out (made through the store: the console's shortest is minutes long).
    expires = time.time() + 3
    override = store_call(site, "add_override", "year7", "allow", domain="games.example", created_by=TEACHER, expires_at=expires)
    reaches_dns(lambda: a_records(site, name, YEAR7) == allowed)
    teacher.open("/overrides")
    row = page.locator(f"#override-{override.id}")
    assert "games.example" in row.inner_text() and row.locator(".time-left").inner_text() == "1 min"
    wait_for(lambda: time.time() > expires, timeout=4)
    reaches_dns(lambda: a_records(site, name, YEAR7) == BLOCKED)
    row.wait_for(state="detached", timeout=7_000)  # console.js drops it without a reload
    teacher.open("/overrides")
    assert "No overrides in force." in page.inner_text("#active-overrides")


def test_check_a_domain_explains_the_verdict_in_plain_words(admin: Console) -> None:
    page = admin.open("/check")
    page.fill("#check-name", "www.games.example")
    page.select_option("#check-group", "year7")
    page.click("#check-submit")
    page.wait_for_url(re.compile(r"/check\?name=www.games.example"))
    explanation = page.locator("#explanation")
    assert "verdict-block" in explanation.get_attribute("class")
    assert explanation.locator("h2").inner_text() == "www.games.example for year7"
    lines = explanation.locator("#explanation-lines li").all_inner_texts()
    assert lines[0] == "Blocked: games is blocked for year7 at all times."
    assert "Listed (as games.example) in: games (Online games)." in lines
    blocked_now = next(line for line in lines if line.startswith("Blocked for year7 at "))
    assert "games" in blocked_now.rpartition(": ")[2].rstrip(".").split(", ")
    page.click("#check-querylog")
    page.wait_for_url(re.compile(r"/querylog\?"))
    assert page.input_value("#q-domain") == "www.games.example"


def wait_for_rows(tab: Console, url: str, expected: int, timeout: float = 3.0) -> None:
    """Load the query log at ``url`` until it shows ``expected`` rows: events reach the
    store in batches, a moment after the answers."""
    def shown() -> bool:
        tab.open(url)
        return tab.page.locator('#querylog-results tbody tr[class^="verdict-"]').count() >= expected

    wait_for(shown, timeout)


def test_the_query_log_searches_by_domain_and_verdict_a_page_at_a_time(site: Site, admin: Console) -> None:
    names = [f"q{i}.paging.example" for i in range(60)]  # more than one page (50 rows)
    for name in names:
        assert a_records(site, name, YEAR8) == [address_for(name)]
    blocked = "search.games.example"  # a name no other test asks for
    assert a_records(site, blocked, YEAR8) == BLOCKED
    page = admin.page

    wait_for_rows(admin, f"/querylog?domain={blocked}", 1)  # the last one sent: all are stored
    admin.open("/querylog")
    page.fill("#q-domain", "paging.example")
    page.click("#querylog-search")
    page.wait_for_url(re.compile(r"domain=paging.example"))
    first = admin.column("#querylog-results", QUERYLOG_NAME)
    assert len(first) == 50 and set(first) <= set(names)
    page.click("#older")
    page.wait_for_url(re.compile(r"cursor="))
    second = admin.column("#querylog-results", QUERYLOG_NAME)
    assert sorted(first + second) == sorted(names)
    assert page.is_visible("#newest") and not page.is_visible("#older")

    admin.open("/querylog")
    page.select_option("#q-group", "year8")
    page.fill("#q-domain", blocked)
    page.select_option("#q-verdict", "blocked")
    page.click("#querylog-search")
    page.wait_for_url(re.compile(r"verdict=blocked"))
    assert admin.column("#querylog-results", QUERYLOG_NAME) == [blocked]
    [verdict] = admin.column("#querylog-results", QUERYLOG_NAME + 2)
    assert verdict.split()[0] == "blocked"  # followed by the one-click fix link
    assert "games" in admin.column("#querylog-results", QUERYLOG_NAME + 3)[0]

    page.select_option("#q-verdict", "allowed")
    page.click("#querylog-search")
    page.wait_for_url(re.compile(r"verdict=allowed"))
    assert admin.column("#querylog-results", 0) == ["No queries match."]


def test_the_dashboard_shows_its_charts_on_a_desktop_and_on_a_phone(
    site: Site, admin: Console, admin_on_phone: Console, tmp_path: Path
) -> None:
    assert a_records(site, "www.games.example", YEAR7) == BLOCKED  # something to chart
    page = admin.page

    def charted() -> bool:
        admin.open("/")
        return page.locator("#top-domains").count() == 1 and "www.games.example" in admin.column("#top-domains", 0)

    wait_for(charted, timeout=3)
    assert page.inner_text("#total-blocked") != "0"
    assert page.locator("svg.chart").is_visible()
    assert page.locator("svg.chart .bar").count() >= 1
    page.screenshot(path=tmp_path / "dashboard-desktop.png", full_page=True)

    page = admin_on_phone.open("/")
    chart = page.locator("svg.chart")
    assert chart.is_visible() and chart.bounding_box()["width"] <= PHONE["width"]
    assert page.locator("svg.chart .bar").count() >= 1
    page.screenshot(path=tmp_path / "dashboard-phone.png", full_page=True)
    assert admin_on_phone.horizontal_overflow() <= 1
    assert (tmp_path / "dashboard-desktop.png").stat().st_size > 0
    assert (tmp_path / "dashboard-phone.png").stat().st_size > 0


def test_every_page_in_the_menu_fits_a_phone(admin_on_phone: Console) -> None:
    paths = admin_on_phone.page.eval_on_selector_all("nav a", "links => links.map(a => a.getAttribute('href'))")
    assert len(paths) >= 10
    too_wide = {}
    for path in [*paths, "/check?name=www.games.example&group=year7"]:
        admin_on_phone.open(path)
        if admin_on_phone.horizontal_overflow() > 1:
            too_wide[path] = admin_on_phone.horizontal_overflow()
    assert too_wide == {}


def test_a_group_page_fits_a_phone(admin_on_phone: Console) -> None:
    admin_on_phone.open("/groups/year7")
    assert admin_on_phone.horizontal_overflow() <= 1


def test_a_domain_name_holding_html_is_shown_as_text(site: Site, admin: Console) -> None:
    hostile = dns.name.Name([HOSTILE_LABEL, b"xss", b"social", b"example", b""])
    assert a_records(site, hostile, YEAR8) == BLOCKED
    page = admin.page
    text = HOSTILE_SHOWN + ".xss.social.example"

    wait_for_rows(admin, "/querylog?domain=xss.social.example", 1)
    names = admin.column("#querylog-results", QUERYLOG_NAME)
    assert names == [text]
    assert page.locator("main img").count() == 0

    admin.open("/")
    assert text in admin.column("#top-domains", 0)
    assert page.locator("main img").count() == 0

    admin.open("/querylog?domain=xss.social.example")
    page.locator("#querylog-results td.name a", has_text=text).first.click()
    page.wait_for_url(re.compile(r"/check\?"))
    assert f"{text} for year8" in page.inner_text("#explanation h2")
    assert page.locator("main img").count() == 0
    assert admin.dialogs == []


def test_a_pasted_address_blocks_its_site_and_junk_gets_a_plain_sentence(site: Site, admin: Console) -> None:
    """#20 item 2 in the browser: the address bar pasted into a deny list blocks the site it
    names, and the page says which name it took; a typo is refused in words, not YAML paths."""
    name = "www.pasted.example"
    assert a_records(site, name, YEAR7) == [address_for(name)]
    page = admin.open("/groups/year7")
    page.fill("#new-deny", f"https://{name}/@someone?tab=videos")
    page.click("#add-deny")
    page.wait_for_url(re.compile(r"/groups/year7\?saved=\d+"))
    assert f"Took {name} from the address you pasted." in page.inner_text("#notice")
    assert name in page.locator("#lists").inner_text()
    reaches_dns(lambda: a_records(site, name, YEAR7) == BLOCKED)

    page.fill("#new-deny", "pasted example")
    page.click("#add-deny")
    page.wait_for_load_state()
    problems = page.inner_text("#form-errors")
    assert "'pasted example' is not a domain name: it has a space in it" in problems
    assert "policy:" not in problems and "deny[" not in problems
    assert page.input_value("#new-deny") == "pasted example"


def test_removing_a_group_asks_first_and_works_without_javascript(site: Site, browser: Browser) -> None:
    """#20 item 5: the second step is a page, not a script dialog (the CSP forbids inline
    scripts); with JavaScript off it still says what follows, and only its button removes."""
    with console(browser, site.url, java_script_enabled=False) as tab:
        tab.log_in(ADMIN, PASSWORD)
        page = tab.open("/groups")
        page.fill("#group-name", "year10")
        page.fill("#group-networks", "127.0.0.10/32\n127.0.0.11/32")
        page.click("#add-group")
        page.wait_for_url(re.compile(r"/groups/year10\?saved="))
        page.click("#remove-group")
        page.wait_for_selector("#confirm-title")
        assert page.inner_text("#confirm-title") == "Remove the group year10?"
        consequences = page.locator("#consequences li").all_inner_texts()
        assert consequences[0] == "Its 2 networks fall to the default rules (127.0.0.10/32, 127.0.0.11/32)."
        page.click("#confirm-cancel")
        page.wait_for_url(re.compile(r"/groups/year10$"))  # kept
        page.click("#remove-group")
        page.click("#confirm-button")  # (the policy names no default_group: "default" is implied)
        page.wait_for_url(re.compile(r"/groups\?saved="))
        assert page.locator("#group-year10").count() == 0
        assert tab.dialogs == []
