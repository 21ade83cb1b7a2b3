"""The compliance export through the real console: the printable page, the CSV download
(read back with the csv module), who may have either, escaping of names holding HTML,
neutralised spreadsheet formulas, and the audit entry every export leaves."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from filterdns.config.loader import load_config
from filterdns.reports.compliance import MAX_DAYS
from filterdns.store import AuditFilter
from filterdns.web.views_compliance import FORMULA_START, safe_cell
from tests.support.web import Console, event, make_console

NORTH = "North <i>Campus</i>"
EVIL_GROUP = '=HYPERLINK("http://evil.example","click")'
EVIL_SITE = "@SUM(1+1)"
EVIL_COMMENT = "=cmd|' /C calc'!A0"
CONFIG = f"""
timezone: Europe/London
categories:
  video: {{description: "Video <b>sites</b>", domains: [youtube.com]}}
  games: {{description: "Online games", domains: [games.example]}}
  adult: {{description: "Adult content", domains: [adult.example]}}
groups:
  7b: {{site: "{NORTH}", description: "<script>alert(1)</script> form", networks: [10.0.7.0/24], block: [adult, games]}}
  8c: {{site: "{NORTH}", networks: [10.0.8.0/24], block: [adult], rules: [{{during: lessons, block: [video]}}]}}
  '{EVIL_GROUP}': {{site: "{EVIL_SITE}", networks: [10.0.9.0/24], block: [games]}}
schedules:
  lessons: {{weekly: {{mon-fri: ["09:00-15:00"]}}}}
default_group: guests
"""


@pytest.fixture
async def console(tmp_path: Path):
    async with make_console(tmp_path) as console:
        path = tmp_path / "compliance.yaml"
        path.write_text(CONFIG)
        console.control.config = load_config(path)
        when = time.time() - 2 * 86_400
        await console.store.insert_events(
            [event("a.example", "7b", t=when) for _ in range(6)]
            + [event("games.example", "7b", verdict="blocked", category="games", t=when) for _ in range(4)]
            + [event("adult.example", "7b", verdict="blocked", category="adult", t=when)]
            + [event("youtube.com", "8c", verdict="blocked", category="video", t=when) for _ in range(2)]
            + [event("games.example", EVIL_GROUP, verdict="blocked", category="games", t=when) for _ in range(3)]
        )
        await console.control.apply_policy({"groups": {"7b": {"block": ["adult"]}}}, author="ada", comment=EVIL_COMMENT)
        yield console


def sections(text: str) -> dict[str, list[list[str]]]:
    """The CSV's sections by title: the rows after the title row, up to an empty row."""
    found: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for row in csv.reader(io.StringIO(text)):
        if not row:
            current = None
        elif current is None:
            current = found.setdefault(row[0], [])
        else:
            current.append(row)
    return found


async def test_the_printable_page_shows_the_report_with_names_escaped(console: Console) -> None:
    await console.logged_in("vic")
    html = await console.page("/compliance")
    assert "Filtering and compliance report: All sites" in html
    assert re.search(r'id="total-queries">16<', html) and re.search(r'id="total-blocked">10<', html)
    assert re.search(r'id="total-changes">1<', html)
    assert '<link rel="stylesheet" href="/static/compliance.css">' in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; form" in html
    assert "<i>Campus" not in html and '<option value="North &lt;i&gt;Campus&lt;/i&gt;">' in html
    assert "Video &lt;b&gt;sites&lt;/b&gt;" in html and "<b>sites" not in html
    assert "Always blocked: adult, games." in html and "Blocked during lessons: video." in html
    assert "vic" in re.search(r'id="report-prepared">([^<]*)<', html).group(1)
    row = re.search(
        r"<tr>\s*<td class=\"time\" data-label=\"Time\">[^<]+</td>\s*<td class=\"label\" data-label=\"Who\">ada</td>\s*"
        r"<td data-label=\"Action\">policy.change</td>.*?</tr>", html, re.DOTALL
    ).group(0)
    assert "=cmd|&#39; /C calc&#39;!A0" in row and "<td data-label=\"Groups\">7b</td>" in row
    assert 'id="nav-compliance"' in html
    entries = await console.store.list_audit(AuditFilter(action="report.compliance_export"))
    assert [(e.actor, e.target, e.detail["format"]) for e in entries] == [("vic", "All sites", "page")]

    static = await console.client.get("/static/compliance.css")
    assert static.status == 200 and "@media print" in await static.text()


async def test_a_site_and_dates_choose_what_is_counted(console: Console) -> None:
    await console.logged_in("ada")
    today = datetime.now(ZoneInfo("Europe/London")).date()
    query = urlencode({"site": NORTH, "from": (today - timedelta(days=7)).isoformat(), "to": today.isoformat()})
    html = await console.page(f"/compliance?{query}")
    assert "Filtering and compliance report: North &lt;i&gt;Campus&lt;/i&gt;" in html
    assert re.search(r'id="total-blocked">7<', html) and re.search(r'id="total-groups">2<', html)
    assert "HYPERLINK" not in html.split('id="compliance-report"')[1]
    # A period with nothing in it: the days before the events.
    empty = urlencode({"site": NORTH, "from": "2026-01-01", "to": "2026-01-31"})
    html = await console.page(f"/compliance?{empty}")
    assert re.search(r'id="total-blocked">0<', html) and "No changes to filtering in this period." in html


async def test_the_csv_parses_matches_the_report_and_neutralises_formulas(console: Console) -> None:
    await console.logged_in("vic")
    response = await console.client.get("/compliance.csv")
    assert response.status == 200 and response.content_type == "text/csv" and response.charset == "utf-8"
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(
        r'attachment; filename="compliance-All-sites-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d\.csv"', disposition
    )
    raw = await response.read()
    assert raw.startswith(b"\xef\xbb\xbf")  # so that Excel reads it as UTF-8
    text = raw.decode("utf-8-sig")
    found = sections(text)
    assert list(found) == [
        "Filtering and compliance report",
        next(t for t in found if t.startswith("Filtering in force on ")),
        "Categories blocked",
        "Lookups and blocked attempts by group and category",
        "Changes to filtering",
    ]
    summary = {row[0]: row[1:] for row in found["Filtering and compliance report"]}
    assert summary["Site"] == ["All sites"] and summary["Time zone"] == ["Europe/London"]
    assert summary["Lookups"] == ["16"] and summary["Blocked attempts"] == ["10"]
    assert summary["Prepared"][1] == "vic"

    counts = found["Lookups and blocked attempts by group and category"]
    header, rows = counts[0], {row[0]: row for row in counts[1:]}
    assert header == ["Group", "Lookups", "Blocked attempts", "adult", "games", "video"]
    assert rows["7b"] == ["7b", "11", "5", "1", "4", "0"]
    assert rows["8c"] == ["8c", "2", "2", "0", "0", "2"]
    assert rows["'" + EVIL_GROUP] == ["'" + EVIL_GROUP, "3", "3", "0", "3", "0"]
    assert rows["Total"] == ["Total", "16", "10", "1", "7", "2"]

    rules = {row[0]: row for row in found[next(t for t in found if t.startswith("Filtering in force"))]}
    assert rules["7b"][1:4] == [NORTH, "<script>alert(1)</script> form", "adult, games"]  # plain text in a CSV
    assert rules["8c"][4] == "lessons: video"
    assert rules["'" + EVIL_GROUP][1] == "'" + EVIL_SITE
    categories = {row[0]: row for row in found["Categories blocked"][1:]}
    assert categories["video"][1:4] == ["Video <b>sites</b>", "", "8c: lessons"]

    (change,) = found["Changes to filtering"][1:]
    assert change[1:] == ["ada", "policy.change", "revision 1", "7b", "'" + EVIL_COMMENT]
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert not [cell for cell in cells if cell.startswith(FORMULA_START)]

    entries = await console.store.list_audit(AuditFilter(action="report.compliance_export"))
    assert [(e.actor, e.detail["format"]) for e in entries] == [("vic", "csv")]


def test_formula_cells_are_neutralised_and_numbers_kept() -> None:
    assert [safe_cell(v) for v in ("=1+1", "+1", "-1", "@A1", "\tx", "\rx", "plain", "a=b", 0, 12)] == [
        "'=1+1", "'+1", "'-1", "'@A1", "'\tx", "'\rx", "plain", "a=b", 0, 12,
    ]  # fmt: skip


async def test_only_admins_and_viewers_get_the_report(console: Console) -> None:
    for path in ("/compliance", "/compliance.csv"):
        response = await console.client.get(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/login?next=")
    for name in ("tom", "pat"):
        await console.logged_in(name)
        for path in ("/compliance", "/compliance.csv?site="):
            await console.page(path, 403)
        console.client.session.cookie_jar.clear()
    await console.logged_in("tom")
    assert 'id="nav-compliance"' not in await console.page("/")
    assert await console.store.list_audit(AuditFilter(action="report.compliance_export")) == []
    console.client.session.cookie_jar.clear()
    await console.logged_in("ada")
    assert 'id="total-blocked"' in await console.page("/compliance")


async def test_bad_requests_say_what_is_wrong(console: Console) -> None:
    await console.logged_in("ada")
    for query, message in (
        ({"from": "2026-06-30", "to": "2026-06-01"}, "the first day must not be after the last day"),
        ({"from": "2024-01-01", "to": "2025-06-01"}, f"a report covers at most {MAX_DAYS} days"),
        ({"from": "yesterday"}, "from: &#39;yesterday&#39; is not a date"),
        ({"site": "Atlantis"}, "no group belongs to a site called &#39;Atlantis&#39;"),
    ):
        html = await console.page(f"/compliance?{urlencode(query)}", 400)
        assert message in html and 'id="compliance-form"' in html and 'id="compliance-report"' not in html
        assert message in await console.page(f"/compliance.csv?{urlencode(query)}", 400)
    assert await console.store.list_audit(AuditFilter(action="report.compliance_export")) == []
