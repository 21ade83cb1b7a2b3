"""Safeguarding alerts in the console over real HTTP: the list and the open count in the
navigation, one alert with the blocked lookups of its burst, acknowledging with a note
(audited, once), editing the rules as policy revisions checked by the real loader, who may
see any of it (admins only), and HTML in names and notes coming out escaped."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from markupsafe import escape

import tests.support.web as support
from filterdns.alerts.notices import alert_mail
from filterdns.config.loader import config_with_policy
from filterdns.config.model import AlertRule
from filterdns.config.policytext import policy_document
from filterdns.policy import document
from filterdns.store import Alert, AuditFilter
from tests.support.alerts import attempt, canary
from tests.support.web import HOSTILE_NAME, Console, make_console


class ValidatingControl(support.FakeControl):
    """The stand-in Control, but like the real one: a policy document is checked by the
    config loader and becomes the running config (so ``config.policy.alert_rules`` follows it)."""

    def __init__(self, config, store):
        super().__init__(config, store)
        assert config.node.source is not None
        self.policy_text = document.render(yaml.safe_load(policy_document(config.node.source)))

    async def apply_policy(self, document_text, *, author: str, comment: str = "") -> int:
        text = document_text if isinstance(document_text, str) else document.render(document_text)
        self.config = config_with_policy(self.config, text)  # ConfigError: nothing changes
        return await super().apply_policy(text, author=author, comment=comment)


@pytest.fixture
async def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    monkeypatch.setattr(support, "FakeControl", ValidatingControl)
    async with make_console(tmp_path) as console:
        yield console


async def an_alert(console: Console, **changes: Any) -> Alert:
    """An alert over five blocked adult lookups (one with a hostile name), as the evaluator
    would have raised it, amid lookups that are not part of it."""
    t0 = time.time() - 600
    await console.store.insert_events([
        *(attempt(t0 + i, "adult", name=f"site{i}.adult.example") for i in range(4)),
        attempt(t0 + 4, "adult", name=HOSTILE_NAME),
        attempt(t0 + 2, "games", name="games.example"),                           # another category
        attempt(t0 + 3, "adult", name="other.adult.example", client="10.0.7.99"),  # another device
        attempt(t0 + 100, "adult", name="later.adult.example"),                   # after the burst
    ])  # fmt: skip
    fields: dict[str, Any] = dict(
        rule="adult", subject_kind="client", subject="10.0.7.21", group="7b", client="10.0.7.21",
        mac="aa:bb:cc:00:07:21", categories=["adult"], first_time=t0, last_time=t0 + 4, attempts=5, window=600,
    )  # fmt: skip
    fields.update(changes)
    alert = await console.store.create_alert(**fields)
    assert alert is not None
    return alert


# --- alerts -----------------------------------------------------------------------------------


async def test_the_list_and_the_open_count(console: Console) -> None:
    alert = await an_alert(console)
    await console.logged_in("ada")
    text = await console.page("/alerts")
    assert '<a id="nav-alerts" href="/alerts" aria-current="page">Alerts <span class="count">1</span></a>' in text
    row = text.split(f'id="alert-{alert.id}"')[1].split("</tr>")[0]
    for cell in ("adult", "10.0.7.21 (MAC aa:bb:cc:00:07:21)", "<td>7b</td>", '<td class="num">5</td>'):
        assert cell in row
    assert 'id="acknowledged-alerts"' in text and "None yet." in text
    assert "Alerts <span" in await console.page("/overrides")  # on every page


async def test_the_detail_shows_the_bursts_lookups_escaped(console: Console) -> None:
    alert = await an_alert(console)
    await console.logged_in("ada")
    text = await console.page(f"/alerts/{alert.id}")
    lookups = text.split('id="alert-lookups"')[1]
    assert [f"site{i}.adult.example" in lookups for i in range(4)] == [True] * 4
    assert lookups.count('<a class="fix" href="/fixes?name=site') == 4  # one-click fix per lookup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.example" in lookups and "<script>alert" not in text
    for other in ("games.example", "other.adult.example", "later.adult.example"):
        assert other not in lookups
    assert 'id="acknowledge-form"' in text
    await console.page("/alerts/9999", 404)


async def test_a_group_alerts_lookups_span_its_devices_and_bypass_includes_canaries(console: Console) -> None:
    t0 = time.time() - 600
    await console.store.insert_events([
        canary(t0, client="10.0.7.5"),
        attempt(t0 + 1, "bypass", name="vpn.example", client="10.0.7.6"),
        attempt(t0 + 2, "", name="denied.example", client="10.0.7.7", reason="deny-list"),  # not a bypass
    ])  # fmt: skip
    alert = await an_alert(console, rule="bypass", subject_kind="group", subject="7b", client="", mac="",
                           categories=["bypass"], first_time=t0, last_time=t0 + 2)  # fmt: skip
    await console.logged_in("ada")
    text = await console.page(f"/alerts/{alert.id}")
    assert "several devices" in text
    lookups = text.split('id="alert-lookups"')[1]
    assert "use-application-dns.net" in lookups and "vpn.example" in lookups and "denied.example" not in lookups


async def test_acknowledging_needs_a_note_is_audited_and_happens_once(console: Console) -> None:
    alert = await an_alert(console)
    token = await console.logged_in("ada")
    response = await console.post(f"/alerts/{alert.id}/acknowledge", {"note": "   "}, token)
    assert response.status == 422 and "Write a note" in await response.text()
    response = await console.client.post(f"/alerts/{alert.id}/acknowledge", data={"note": "x"}, allow_redirects=False)
    assert response.status == 403  # no CSRF token
    assert (await console.store.get_alert(alert.id)).open  # type: ignore[union-attr]

    note = "Spoke to <b>the pupil</b>; referred to the DSL."
    response = await console.post(f"/alerts/{alert.id}/acknowledge", {"note": note}, token)
    assert response.status == 303 and response.headers["Location"] == f"/alerts/{alert.id}?done=acknowledged"
    done = await console.store.get_alert(alert.id)
    assert done is not None and (done.acknowledged_by, done.note) == ("ada", note) and not done.open
    [entry] = await console.store.list_audit(AuditFilter(action="alert.acknowledge"))
    assert (entry.actor, entry.target, entry.detail) == ("ada", f"alert {alert.id}", {"rule": "adult"})

    text = await console.page(f"/alerts/{alert.id}?done=acknowledged")
    assert "Alert acknowledged." in text and "Spoke to &lt;b&gt;the pupil&lt;/b&gt;" in text
    assert 'class="count"' not in text  # nothing open any more
    assert f'id="alert-{alert.id}"' in (await console.page("/alerts")).split('id="acknowledged-alerts"')[1]

    response = await console.post(f"/alerts/{alert.id}/acknowledge", {"note": "again"}, token)
    assert response.status == 409 and "ada acknowledged this alert already" in await response.text()
    assert (await console.store.get_alert(alert.id)).note == note  # type: ignore[union-attr]


async def test_html_in_a_groups_name_is_escaped(console: Console) -> None:
    await an_alert(console, group="<i>7b</i>", rule="<b>rule</b>")
    await console.logged_in("ada")
    text = await console.page("/alerts")
    assert "&lt;i&gt;7b&lt;/i&gt;" in text and "&lt;b&gt;rule&lt;/b&gt;" in text
    assert "<i>7b" not in text and "<b>rule" not in text


@pytest.mark.parametrize("who", ["vic", "tom", "pat"])
async def test_only_admins_see_alerts(console: Console, who: str) -> None:
    alert = await an_alert(console)
    token = await console.logged_in(who)
    for path in ("/alerts", f"/alerts/{alert.id}", "/alerts/rules", "/alerts/rules/x"):
        await console.page(path, 403)
    response = await console.post(f"/alerts/{alert.id}/acknowledge", {"note": "seen"}, token)
    assert response.status == 403
    response = await console.post("/alerts/rules", {"name": "x", "threshold": "5", "minutes": "10"}, token)
    assert response.status == 403
    assert (await console.store.get_alert(alert.id)).open  # type: ignore[union-attr]
    if who != "pat":  # parents have no console pages at all
        assert 'id="nav-alerts"' not in await console.page("/overrides")


async def test_only_admins_see_who_looked_up_what_alerts_watch(console: Console) -> None:
    """The single lookups behind alerts, and alert mail in the outbox, follow the alert
    page's rule: a viewer cannot find which device tried the watched category."""
    console.control.config = console.control.config.with_policy(
        alert_rules=(AlertRule("adult-watch", categories=("adult",)),)
    )
    await an_alert(console)
    mail = alert_mail(await console.store.get_alert(1), console.control.config.policy.alert_rules[0], console.control.config)
    assert "10.0.7.21" not in mail.subject and "device" not in mail.subject
    await console.store.enqueue_message(dedup_key="alert:1:email:dsl@school.test", channel="email", kind="alert",
                                        recipient="dsl@school.test", subject=mail.subject, body_text=mail.text)  # fmt: skip
    await console.store.enqueue_message(dedup_key="test:1", channel="email", kind="test",
                                        recipient="it@school.test", subject="filterdns test mail", body_text="x")  # fmt: skip
    for who, sees in (("ada", True), ("vic", False), ("tom", False)):
        await console.logged_in(who)
        by_category = await console.page("/querylog?category=adult")
        everything = await console.page("/querylog")
        api = await (await console.client.get("/api/v1/events?category=adult")).json()
        assert ("site1.adult.example" in by_category) is sees, who
        assert ("site1.adult.example" in everything) is sees, who
        assert "games.example" in everything, who
        assert bool(api["events"]) is sees, who
        if who != "tom":  # teachers have no outbox page
            outbox = await console.page("/outbox")
            assert (mail.subject in outbox) is sees, who
            assert "filterdns test mail" in outbox


# --- rules ------------------------------------------------------------------------------------


def rule_form(token: str, revision: int, **changes: Any) -> list[tuple[str, str]]:
    fields: dict[str, Any] = {
        "name": "adult-attempts", "categories": ["adult"], "bypass": "1", "threshold": "5", "minutes": "10",
        "per": "client", "groups": ["7b"], "email": "dsl@school.test, head@school.test",
        "webhooks": "https://hooks.school.test/alerts", "comment": "KCSIE", "revision": str(revision),
        "csrf_token": token,
    }  # fmt: skip
    fields.update(changes)
    return [(key, item) for key, value in fields.items() for item in (value if isinstance(value, list) else [value])]


async def post_rule(console: Console, path: str, token: str, **changes: Any):
    return await console.client.post(path, data=rule_form(token, console.control.revision, **changes),
                                      allow_redirects=False)  # fmt: skip


async def test_admins_add_change_and_remove_rules_as_policy_revisions(console: Console) -> None:
    token = await console.logged_in("ada")
    text = await console.page("/alerts/rules")
    assert "No alert rules yet." in text and 'name="categories" value="games"' in text

    response = await post_rule(console, "/alerts/rules", token)
    assert response.status == 303, await response.text()
    revision = console.control.revision
    assert response.headers["Location"] == f"/alerts/rules?saved={revision}"
    assert console.control.policy_data()["alerts"]["rules"]["adult-attempts"] == {
        "categories": ["adult"], "bypass": True, "threshold": 5, "within": "10m", "per": "client",
        "groups": ["7b"], "email": ["dsl@school.test", "head@school.test"],
        "webhooks": ["https://hooks.school.test/alerts"]}  # fmt: skip
    [rule] = console.control.config.policy.alert_rules
    assert (rule.name, rule.window, rule.email) == ("adult-attempts", 600.0, ("dsl@school.test", "head@school.test"))
    saved = await console.store.latest_revision()
    assert saved is not None and (saved.id, saved.author, saved.comment) == (revision, "ada", "add alert rule adult-attempts: KCSIE")
    [entry] = await console.store.list_audit(AuditFilter(action="policy.change"))
    assert entry.actor == "ada"
    text = await console.page(f"/alerts/rules?saved={revision}")
    assert f"Saved as revision {revision}" in text and 'href="/alerts/rules/adult-attempts"' in text

    edit = await console.page("/alerts/rules/adult-attempts")
    assert 'name="categories" value="adult" checked' in edit and 'value="group" selected' not in edit
    response = await post_rule(console, "/alerts/rules/adult-attempts", token, name="ignored", threshold="3",
                               minutes="2.5", per="group", groups=[], bypass="", webhooks="")  # fmt: skip
    assert response.status == 303, await response.text()
    [rule] = console.control.config.policy.alert_rules
    assert (rule.name, rule.threshold, rule.window, rule.per, rule.groups, rule.bypass, rule.webhooks) == (
        "adult-attempts", 3, 150.0, "group", (), False, ())
    assert console.control.policy_data()["alerts"]["rules"]["adult-attempts"]["within"] == "150s"

    asked = await console.post("/alerts/rules/adult-attempts/delete", {}, token)
    text = await asked.text()  # a first press asks, saying what follows, and changes nothing
    assert asked.status == 200 and 'id="confirm-form"' in text and "The alerts it raised stay in the list." in text
    assert "No new alerts are raised by adult-attempts" in text and console.control.revision == revision + 1
    response = await console.post("/alerts/rules/adult-attempts/delete", {"confirmed": "yes"}, token)
    assert response.status == 303
    assert console.control.config.policy.alert_rules == () and console.control.revision == revision + 2
    await console.page("/alerts/rules/adult-attempts", 404)


async def test_refused_rules_come_back_with_the_loaders_problems(console: Console) -> None:
    token = await console.logged_in("ada")
    before = console.control.revision
    cases = [
        ({"email": "not-an-address", "webhooks": ""}, "not a mail address"),
        ({"categories": [], "bypass": ""}, "a rule needs 'categories' or 'bypass: true'"),
        ({"email": "", "webhooks": ""}, "a rule needs recipients"),
        ({"threshold": "five"}, "whole number"),
        ({"minutes": "0"}, "above zero"),
        ({"name": "<b>x</b>"}, "a rule name is letters"),
    ]
    for changes, problem in cases:
        response = await post_rule(console, "/alerts/rules", token, **changes)
        text = await response.text()
        assert response.status == 422 and escape(problem) in text, (changes, text[-1500:])
        assert "<b>x</b>" not in text
    assert console.control.revision == before and console.control.config.policy.alert_rules == ()

    assert (await post_rule(console, "/alerts/rules", token)).status == 303
    response = await post_rule(console, "/alerts/rules", token)
    assert response.status == 422 and "there is a rule called adult-attempts already" in await response.text()
    response = await console.client.post("/alerts/rules/adult-attempts",
                                         data=rule_form(token, before, threshold="9"), allow_redirects=False)
    assert response.status == 409 and "The policy changed" in await response.text()  # a stale form
    assert console.control.config.policy.alert_rules[0].threshold == 5
