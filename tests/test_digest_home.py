"""The weekly digest covers each child linked to the parent (issue 19): one section per child
with their week at home, as the family page shows it, delivered to a real SMTP server
(aiosmtpd on 127.0.0.1) in English and in Brazilian Portuguese; a parent never reads
another family's child."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from filterdns.notify.delivery import OutboxDelivery
from filterdns.reports.digest_job import DigestJob
from tests.support.mail import Inbox, smtp_server
from tests.support.web import Console, event, make_console
from tests.test_digest import SEND
from tests.test_web_digest import mail_config, parts

FRIDAY = SEND - 3 * 24 * 3600.0  # in the week the digest covers
ROSTER = """pupil_id,display_name,group,email,device_ids
p-1,Bia Silva,7b,,
p-2,Caio Silva,8c,,
p-3,Dan Souza,7b,,
"""


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    async with make_console(tmp_path) as console:
        yield console


def at_home(pupil: str, name: str, count: int, category: str, group: str = "7b@home", t: float = FRIDAY):
    blocked = event(name, group, verdict="blocked", category=category, t=t)
    return [replace(blocked, pupil=pupil, reason="parent" if not category else blocked.reason)] * count


async def test_the_digest_has_each_childs_week_at_home_in_the_parents_language(console: Console, tmp_path: Path):
    inbox = Inbox()
    async with smtp_server(inbox) as port:
        config = console.control.config = mail_config(tmp_path, console, port)
        store = console.store
        await console.control.import_roster(ROSTER, actor="ada", source="test")
        await console.add_user("ana@example.org", "parent", ["7b", "8c"])
        await store.save_parent_profile("ana@example.org", [("Bia Silva", "7b"), ("Caio Silva", "8c")])
        await store.set_parent_pupils("ana@example.org", ["p-1", "p-2"])
        await console.add_user("gil@example.org", "parent", ["7b"])
        await store.save_parent_profile("gil@example.org", [("Dan Souza", "7b")])
        await store.set_parent_pupils("gil@example.org", ["p-3"])
        await store.set_parent_language("gil@example.org", "pt-BR")
        await store.insert_events([
            *at_home("p-1", "roblox.com", 3, "games"),
            *at_home("p-1", "late.test", 2, ""),  # a parent's bedtime
            *at_home("p-3", "tiktok.com", 1, "social"),
            *at_home("p-1", "last-week.test", 4, "games", t=FRIDAY - 7 * 24 * 3600.0),
        ])  # fmt: skip
        job = DigestJob(store, lambda: config, children_at_home=console.control.home_profiles.pupils_of)

        assert (await job.run_once(now=SEND + 60)).queued == 2
        assert await OutboxDelivery(store, config.node.mail).run_once(now=SEND + 61) == 2

    [mail] = inbox.to("ana@example.org")
    text, html = parts(mail)
    bia = text.split("== Bia Silva: This week at home ==")[1].split("==")[0]
    assert "* games: 3" in bia and "* bedtime or pause: 2" in bia
    assert "* roblox.com (3)" in bia and "* late.test (2)" in bia and "last-week" not in bia
    caio = text.split("== Caio Silva: This week at home ==")[1].split("==")[0]
    assert "Nothing was blocked at home this week." in caio
    assert 'id="home-1"' in html and "roblox.com (3), late.test (2)" in html and 'id="home-2"' in html
    for other_family in ("Dan Souza", "tiktok.com"):
        assert other_family not in text and other_family not in html

    [mail] = inbox.to("gil@example.org")
    text, html = parts(mail)
    dan = text.split("== Dan Souza: Esta semana em casa ==")[1].split("==")[0]
    assert "* social: 1" in dan and "* tiktok.com (1)" in dan and "Sites mais bloqueados" in dan
    assert "This week at home" not in text + html and "Most blocked sites" not in text + html
    for other_family in ("Bia Silva", "roblox.com", "late.test"):
        assert other_family not in text and other_family not in html
