"""Control: the one way the console changes the running resolver (validated, stored, audited, applied)."""

from __future__ import annotations

import time

import pytest
import yaml

from filterdns.config.loader import ConfigError, load_config
from filterdns.server.service import Service
from tests.support.fake_upstream import FakeUpstream
from tests.support.hostile import laughs

CONFIG = """
server: {{listen: ["127.0.0.1:0"]}}
upstream: {{servers: ["127.0.0.1:{port}"]}}
data_dir: data
categories:
  adult: {{description: Adult content, domains: [adult.example]}}
  games: {{description: Games, domains: [games.example]}}
  illegal: {{description: Illegal content, locked: true, domains: [abuse.example]}}
groups:
  year7: {{networks: [10.7.0.0/16], block: [adult, games]}}
  staff: {{networks: [10.1.0.0/16]}}
default_group: guests
"""


@pytest.fixture
async def service(tmp_path):
    with FakeUpstream() as upstream:
        path = tmp_path / "config.yaml"
        path.write_text(CONFIG.format(port=upstream.port))
        running = Service(load_config(path))
        await running.start()
        yield running
        await running.stop()


def verdict(service: Service, group: str, name: str) -> str:
    return service.active.policy.engine.decide(group, name, 1).action


async def test_apply_policy_validates_stores_audits_and_applies(service):
    control = service.control
    first_id, text = control.policy_document()
    document = yaml.safe_load(text)
    document["groups"]["staff"]["block"] = ["games"]
    revision = await control.apply_policy(document, author="alice", comment="games off for staff")
    assert revision > first_id
    assert verdict(service, "staff", "www.games.example") == "block"
    audit = await control.store.list_audit()
    assert audit[0].actor == "alice" and audit[0].action == "policy.change"

    document["groups"]["staff"]["block"] = ["nonsense"]
    with pytest.raises(ConfigError) as problem:
        await control.apply_policy(document, author="alice")
    assert "unknown category 'nonsense'" in problem.value.problems[0]
    assert control.policy_document()[0] == revision  # nothing stored


async def test_a_policy_with_nested_aliases_is_refused_before_anything_expands_it(service):
    """Through the API a document reaches Control as text: the alias refusal comes before any
    check that would walk the expanded lists (str() of ``allow: *l6`` is 2.6 million names)."""
    control = service.control
    before = control.policy_document()[0]
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        await control.apply_policy(laughs(7, top="allow: *l6"), author="alice")
    assert time.monotonic() - started < 1.0
    assert refused.value.problems == ["policy:3: YAML aliases (*l0) are not accepted in a policy; write the value out in full"]
    assert control.policy_document()[0] == before  # nothing stored


async def test_a_document_nested_hundreds_deep_is_refused_plainly(service):
    control = service.control
    before = control.policy_document()[0]
    nested: dict = {}
    for _ in range(2000):
        nested = {"a": nested}
    with pytest.raises(ConfigError) as refused:
        await control.apply_policy({"groups": nested}, author="alice")
    assert refused.value.problems == ["policy: lists and mappings are nested hundreds deep; no config needs that"]
    assert control.policy_document()[0] == before


async def test_rollback_restores_an_earlier_revision(service):
    control = service.control
    first_id, text = control.policy_document()
    document = yaml.safe_load(text)
    document["deny"] = ["bad.example"]
    await control.apply_policy(document, author="alice")
    assert verdict(service, "staff", "bad.example") == "block"
    await control.rollback(first_id, author="alice")
    assert verdict(service, "staff", "bad.example") == "allow"
    assert (await control.store.list_audit())[0].action == "policy.rollback"


async def test_overrides_allow_for_a_time_but_never_a_protected_category(service):
    control = service.control
    assert verdict(service, "year7", "www.games.example") == "block"
    override = await control.add_override("year7", "allow", category="games", minutes=50, author="teacher")
    assert verdict(service, "year7", "www.games.example") == "allow"
    assert "override by teacher" in service.active.policy.engine.decide("year7", "www.games.example", 1).detail
    assert [o.id for o in control.active_overrides()] == [override.id]
    with pytest.raises(ValueError, match="protected"):
        await control.add_override("year7", "allow", category="adult", minutes=10, author="teacher")
    with pytest.raises(ValueError, match="protected"):
        await control.add_override("year7", "allow", domain="www.adult.example", minutes=10, author="teacher")
    with pytest.raises(ValueError):
        await control.add_override("year7", "allow", domain="x.example", category="games", minutes=10, author="t")
    with pytest.raises(ValueError):
        await control.add_override("nogroup", "block", domain="x.example", minutes=10, author="t")
    with pytest.raises(ValueError):
        await control.add_override("year7", "block", domain="x.example", minutes=0, author="t")
    assert await control.revoke_override(override.id, author="teacher")
    assert verdict(service, "year7", "www.games.example") == "block"
    actions = [entry.action for entry in await control.store.list_audit()]
    assert actions[:2] == ["override.revoke", "override.add"]


async def test_an_approved_review_request_allows_the_name_for_that_group(service):
    control = service.control
    request = await control.request_review("www.games.example", "10.7.1.20", "we need it for a lesson")
    assert request.group == "year7"
    await control.decide_review(request.id, "approved", author="alice")
    assert verdict(service, "year7", "www.games.example") == "allow"
    assert "www.games.example" in yaml.safe_load(control.policy_document()[1])["groups"]["year7"]["allow"]
    with pytest.raises(ValueError):
        await control.decide_review(request.id, "declined", author="alice")


async def test_nothing_the_console_does_reaches_a_locked_category(service):
    control = service.control
    assert verdict(service, "staff", "www.abuse.example") == "block"
    document = yaml.safe_load(control.policy_document()[1])
    document["allow"] = ["abuse.example"]
    document["groups"]["staff"]["allow"] = ["www.abuse.example"]
    with pytest.raises(ConfigError) as problem:
        await control.apply_policy(document, author="alice")
    assert problem.value.problems == [
        "allow: abuse.example is listed as illegal, which is locked: nobody can allow it",
        "groups.staff.allow: www.abuse.example is listed as illegal, which is locked: nobody can allow it",
    ]
    document = yaml.safe_load(control.policy_document()[1])
    document["categories"]["illegal"]["locked"] = False
    with pytest.raises(ConfigError, match="category 'illegal' is locked"):
        await control.apply_policy(document, author="alice")
    del document["categories"]["illegal"]
    with pytest.raises(ConfigError, match="category 'illegal' is locked"):
        await control.apply_policy(document, author="alice")
    with pytest.raises(ValueError, match="locked"):
        await control.add_override("staff", "allow", category="illegal", minutes=10, author="teacher")
    with pytest.raises(ValueError, match="^abuse.example is listed as illegal, which is locked: nobody can allow it$"):
        await control.add_override("staff", "allow", domain="abuse.example", minutes=10, author="teacher")
    with pytest.raises(ValueError, match="locked"):
        await control.request_review("abuse.example", "10.1.0.5", "please")
    assert verdict(service, "staff", "www.abuse.example") == "block"


def test_explain_by_client_address_and_bad_input(service):
    control = service.control
    assert control.explain("www.games.example", client="10.7.3.4").group == "year7"
    assert control.explain("www.games.example", client="192.0.2.1").group == "guests"
    with pytest.raises(ValueError):
        control.explain("x.example", group="nope")
    with pytest.raises(ValueError):
        control.explain("x.example", client="not-an-ip")


async def test_a_false_positive_is_fixed_with_a_reason_as_an_audited_revision(service):
    control = service.control
    assert verdict(service, "year7", "www.games.example") == "block"
    with pytest.raises(ValueError, match="say why"):
        await control.fix_false_positive("games.example", fix="allow", group="year7", reason=" ", author="alice")
    revision = await control.fix_false_positive(
        "games.example", fix="allow", group="year7", reason="the maths department uses it", author="alice"
    )
    assert verdict(service, "year7", "www.games.example") == "allow"
    assert control.policy_document()[0] == revision
    assert yaml.safe_load(control.policy_document()[1])["groups"]["year7"]["allow"] == ["games.example"]
    audit = await control.store.list_audit()
    assert (audit[0].action, audit[0].target) == ("fix.allow", "games.example")
    assert audit[0].detail["reason"] == "the maths department uses it" and audit[1].action == "policy.change"

    # "Wrong in the list": an essential name for everyone, still blocked by a locked category.
    await control.fix_false_positive("adult.example", fix="essential", group=None, reason="misfiled", author="alice")
    assert verdict(service, "year7", "adult.example") == "allow"
    assert service.active.policy.engine.decide("year7", "adult.example", 1).reason == "essential"
    assert yaml.safe_load(control.policy_document()[1])["essential_extra"] == ["adult.example"]
    with pytest.raises(ConfigError, match="locked"):
        await control.fix_false_positive("abuse.example", fix="essential", group=None, reason="x", author="alice")
    with pytest.raises(ValueError, match="public suffix"):
        await control.fix_false_positive("co.uk", fix="allow", group=None, reason="x", author="alice")
