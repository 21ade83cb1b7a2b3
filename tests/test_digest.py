"""The weekly digest: when it goes out (DST weeks in London and São Paulo, Monday and Friday
sends, a service that comes back late), what it says (counts of synthetic events of one
week in a real SQLite store, masking, categories, the tip, links; English and Brazilian
Portuguese; nothing that names a site or a device), and the job that queues it (once per
parent and week, also across a restart; who gets none)."""

from __future__ import annotations

import base64

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from filterdns import i18n
from filterdns.config.loader import load_config
from filterdns.config.model import AlertRule, Config, ReportsConfig, SafeguardingContact
from filterdns.links import UNSUBSCRIBE_SECRET, token_account
from filterdns.reports.digest import DigestComposer, DigestMail, digest_week, week_label
from filterdns.reports.digest_job import LATE_LIMIT, DigestJob, last_send_moment
from filterdns.reports.guidance import CATEGORIES
from filterdns.reports.help import COUNTRY_HELP
from filterdns.reports.notice import COUNTRY_LAW
from filterdns.reports.weekly import Week
from filterdns.resolver.events import QueryEvent
from filterdns.store import Store, StoreConfig, open_store
from tests.support import stores
from tests.support.stores import StoreFactory

pg_server, store_factory = stores.pg_server, stores.store_factory  # both backends, for the parent's profile

LONDON = ZoneInfo("Europe/London")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
WEEK_START = date(2026, 11, 9)  # the week of 9-15 November 2026 (GMT all week)
SEND = datetime(2026, 11, 16, 7, 30, tzinfo=LONDON).timestamp()  # the Monday after, 07:30
HOUR = 3600.0

CONFIG = """
timezone: Europe/London
categories:
  social: {description: "Social networks such as Instagram.", domains: [social.example]}
  games: {description: "Online games.", domains: [games.example]}
  adult: {description: "Adult sites.", domains: [adult.example]}
schedules:
  lessons:
    weekly:
      mon-fri: ["08:45-15:15"]
groups:
  7b:
    networks: [10.0.7.0/24]
    block: [adult, games]
    rules:
      - {during: lessons, block: [social]}
    safe_search: {search: true, youtube: strict}
  8c:
    networks: [10.0.8.0/24]
    block: [adult]
default_group: guests
mail: {host: 127.0.0.1, port: 2525, security: none, from: "Riverside Filter <filter@school.example>"}
web: {public_url: "https://filter.school.example/"}
reports: {mask_below: 3, digest: {enabled: true, day: mon, time: "07:30"}}
"""

# What the week's events name; no digest may contain any of it.
PRIVATE = ("instagram.com", "roblox.com", "bbc.co.uk", "www.google.com", "adult.example", "10.0.7.21", "10.0.8.5")


def at(day: date, hour: int, minute: int = 0, zone: ZoneInfo = LONDON) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).timestamp()


def on(weekday: int, hour: int) -> float:
    """An instant of the digest's week; weekday 0 is Monday 9 November."""
    return at(date.fromordinal(WEEK_START.toordinal() + weekday), hour)


def events(t: float, name: str, n: int, *, verdict: str = "allowed", category: str = "", group: str = "7b") -> list[QueryEvent]:
    """``n`` lookups, each from a device of its own."""
    network = "10.0.7" if group == "7b" else "10.0.8"
    return [
        QueryEvent(
            time=t + i, client=f"{network}.{i + 1}", group=group, name=name, qtype=1, verdict=verdict,  # type: ignore[arg-type]
            reason=f"category:{category}" if category else "", category=category, rcode=0, latency_ms=1.0,
            answered_by="policy" if verdict != "allowed" else "cache", transport="udp",
        )
        for i in range(n)
    ]  # fmt: skip


WEEK_EVENTS = (
    events(on(1, 10), "instagram.com", 7, verdict="blocked", category="social")  # Tuesday, in a lesson
    + events(on(2, 17), "roblox.com", 2, verdict="blocked", category="games")  # fewer than 3
    + events(on(0, 8), "bbc.co.uk", 20)
    + events(on(4, 12), "www.google.com", 4, verdict="rewritten")
    + events(on(3, 9), "adult.example", 4, verdict="blocked", category="adult", group="8c")
    + events(on(3, 9), "bbc.co.uk", 10, group="8c")
    # Outside the week: the Sunday before and the Monday after.
    + events(on(-1, 23), "instagram.com", 50, verdict="blocked", category="social")
    + events(on(7, 9), "instagram.com", 50, verdict="blocked", category="social")
)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return load_config(path)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(StoreConfig(node="test"), tmp_path)
    await opened.insert_events(WEEK_EVENTS)
    yield opened
    await opened.close()


async def add_parent(store: Store, email: str, children: list[tuple[str, str]], *, language: str = "") -> None:
    await store.create_user(email, "parent", "!", groups=list(dict.fromkeys(g for _, g in children)))
    await store.save_parent_profile(email, children)
    await store.set_parent_language(email, language)


def flat(text: str) -> str:
    """The text part with its paragraphs unwrapped (it is filled to 72 columns)."""
    return " ".join(text.split())


async def compose(store: Store, config: Config, email: str, *, now: float = SEND) -> DigestMail | None:
    user = await store.get_user(email)
    assert user is not None
    week = Week.containing(WEEK_START, LONDON)
    return await DigestComposer(store, config, week, now=now).compose(user, await store.get_parent_profile(email))


# --- when, and which week --------------------------------------------------------------------


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_the_send_moment_keeps_to_the_wall_clock_across_daylight_saving():
    monday = ReportsConfig(digest_day="mon", digest_time="07:30")
    # London goes to BST (UTC+1) on Sunday 29 March 2026: 07:30 is 07:30 UTC before, 06:30 after.
    assert last_send_moment(monday, LONDON, utc(2026, 3, 30, 6, 45)) == (date(2026, 3, 30), utc(2026, 3, 30, 6, 30))
    assert last_send_moment(monday, LONDON, utc(2026, 3, 30, 6, 15)) == (date(2026, 3, 23), utc(2026, 3, 23, 7, 30))
    week = digest_week(date(2026, 3, 30), LONDON)
    assert week.start == date(2026, 3, 23) and week.until - week.since == 7 * 24 * HOUR - HOUR  # a short week
    # A time the clocks skip that day is the instant they jump: 01:30 on 29 March is 01:00 UTC.
    sunday = ReportsConfig(digest_day="sun", digest_time="01:30")
    assert last_send_moment(sunday, LONDON, utc(2026, 3, 29, 12)) == (date(2026, 3, 29), utc(2026, 3, 29, 1))
    # São Paulo kept summer time until 2019: on 4 November 2018 midnight became 01:00 (UTC-2).
    assert last_send_moment(replace(sunday, digest_time="00:30"), SAO_PAULO, utc(2018, 11, 4, 12)) == (
        date(2018, 11, 4), utc(2018, 11, 4, 3)
    )
    assert last_send_moment(monday, SAO_PAULO, utc(2018, 11, 5, 9, 31)) == (date(2018, 11, 5), utc(2018, 11, 5, 9, 30))


def test_a_monday_digest_covers_last_week_and_a_friday_one_this_week_so_far():
    assert digest_week(date(2026, 11, 16), LONDON).start == WEEK_START  # Monday: the week just ended
    assert digest_week(date(2026, 11, 20), LONDON).start == date(2026, 11, 16)  # Friday: this week
    assert digest_week(date(2026, 11, 22), LONDON).start == date(2026, 11, 16)  # Sunday: this week
    friday = ReportsConfig(digest_day="fri", digest_time="16:00")
    day, _ = last_send_moment(friday, LONDON, at(date(2026, 11, 23), 9))  # the Monday after
    assert day == date(2026, 11, 20)


def test_week_labels():
    english, portuguese = i18n.Translator(i18n.language("en")), i18n.Translator(i18n.language("pt-BR"))
    november = Week.containing(WEEK_START, LONDON)
    assert week_label(november, english) == "9–15 November"
    assert week_label(november, portuguese) == "9 a 15 de novembro"
    across = Week.containing(date(2026, 10, 26), LONDON)
    assert week_label(across, english) == "26 October – 1 November"
    assert week_label(across, portuguese) == "26 de outubro a 1 de novembro"
    new_year = Week.containing(date(2025, 12, 29), LONDON)
    assert week_label(new_year, english) == "29 December 2025 – 4 January 2026"
    # With the year, as the report says it.
    assert english.span(date(2026, 11, 23), date(2026, 11, 29)) == "23–29 November 2026"
    assert portuguese.span(date(2026, 11, 23), date(2026, 11, 29)) == "23 a 29 de novembro de 2026"
    assert portuguese.span(date(2026, 10, 26), date(2026, 11, 1)) == "26 de outubro a 1 de novembro de 2026"


# --- what it says ----------------------------------------------------------------------------------


async def test_the_digest_holds_the_weeks_numbers_per_class_and_nothing_private(store: Store, config: Config):
    await add_parent(store, "ana@example.org", [("Bia <Silva>", "7b"), ("Caio", "8c")])
    mail = await compose(store, config, "ana@example.org")
    assert mail is not None and mail.language == "en" and mail.recipient == "ana@example.org"
    assert mail.subject == "Online safety at school: week of 9–15 November"
    assert mail.dedup_key == "digest:2026-11-09:ana@example.org"
    text, html = mail.text, mail.html
    assert "Week of 9–15 November\n" in text and "this week so far" not in text
    # 7b: 33 lookups, 9 blocked (7 social, 2 games: masked), 4 made safe; the 100 social
    # blocks just outside the week are not counted.
    seven_b, eight_c = text.split("== Class 8c")
    assert "== Class 7b (Bia <Silva>) ==" in seven_b
    for line in ("33 protected lookups", "9 blocked lookups", "4 searches and videos kept safe",
                 "* Social networks: 7\n  Social networks such as Instagram."):  # fmt: skip
        assert line in seven_b, line
    assert "* Blocked lookups from fewer than 3 devices in: Online games." in flat(seven_b)
    assert "* No blocked lookups in: Adult content." in flat(seven_b)
    assert "Full report: https://filter.school.example/reports/7b?week=2026-11-09" in seven_b
    # 8c: 14 lookups, 4 adult blocks; no safe search there, so no such line.
    assert "(Caio)" in eight_c and "14 protected lookups" in eight_c and "4 blocked lookups" in eight_c
    assert "* Adult content: 4\n  Adult sites." in eight_c and "kept safe" not in eight_c.split("A tip")[0]
    # The tip is about the category blocked most.
    assert "== A tip for families (Social networks) ==" in text
    assert any(tip in flat(text) for tip in CATEGORIES["social"].tips)
    # The same in the HTML part, escaped.
    assert "Bia &lt;Silva&gt;" in html and "Bia <Silva>" not in html
    assert "<strong>Social networks: 7</strong>" in html and 'href="https://filter.school.example/reports/8c?week=2026-11-09"' in html
    for private in PRIVATE:
        assert private not in text and private not in html and private not in mail.subject
    # The unsubscribe link is signed for this parent.
    token = mail.unsubscribe_url.removeprefix("https://filter.school.example/family/unsubscribe/")
    secret = await store.get_secret(UNSUBSCRIBE_SECRET, "unused")
    assert token_account(secret, token, ["amy@example.org", "ana@example.org"]) == "ana@example.org"
    assert token_account(secret, token, ["amy@example.org"]) is None
    assert "ana" not in token and base64.urlsafe_b64encode(b"ana@example.org").decode()[:8] not in token
    assert f'<a id="unsubscribe" href="{mail.unsubscribe_url}"' in html and f"Unsubscribe: {mail.unsubscribe_url}" in text
    assert mail.headers == {
        "List-Unsubscribe": f"<{mail.unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Content-Language": "en",
    }


async def test_the_digest_in_brazilian_portuguese_with_a_stricter_threshold(store: Store, config: Config):
    await add_parent(store, "joao@example.org", [("Duda", "7b")], language="pt-BR")
    stricter = config.with_node(reports=replace(config.node.reports, mask_below=5))
    mail = await compose(store, stricter, "joao@example.org")
    assert mail is not None and mail.language == "pt-BR"
    assert mail.subject == "Segurança on-line na escola: semana de 9 a 15 de novembro"
    for line in ("Semana de 9 a 15 de novembro", "== Turma 7b (Duda) ==", "33 consultas protegidas",
                 "* Redes sociais: 7", "menos de 5 buscas e vídeos mantidos seguros",
                 "Acessos bloqueados vindos de menos de 5 aparelhos em: Jogos on-line.",
                 "Nenhum acesso bloqueado em: Conteúdo adulto.",
                 "== Uma dica para as famílias (Redes sociais) ==", "Relatório completo: https://",
                 "Cancelar inscrição: https://", "Um número só aparece quando pelo menos 5 aparelhos diferentes o compõem",
                 "por 30 dias, ela pode consultar o registro do filtro", "guardadas por 400 dias"):  # fmt: skip
        assert line in flat(mail.text), line
    assert '<html lang="pt-BR">' in mail.html and "Relatório completo</a>" in mail.html


async def test_the_privacy_sentences_say_what_staff_see_and_how_long_from_the_config(store: Store, config: Config):
    await add_parent(store, "ana@example.org", [("Bia", "7b")])
    kept = config.with_node(store=replace(config.node.store, raw_events_days=14, aggregates_days=90))
    watched = kept.with_policy(alert_rules=(AlertRule(name="worry", categories=("self-harm",), email=("dsl@example.org",)),))
    text = flat((await compose(store, kept, "ana@example.org")).text)
    assert "for 14 days they can search the filter's log" in text and "kept for 90 days, then deleted" in text
    assert "to reduce the risk of identifying a pupil" in text and "alerted" not in text
    assert "never shows" not in text and "blocked attempts" not in text
    text = flat((await compose(store, watched, "ana@example.org")).text)
    assert "so that they can check that the pupil is safe: Self-harm and suicide." in text


async def test_help_comes_from_the_schools_country_and_contact(store: Store, config: Config):
    await add_parent(store, "ana@example.org", [("Bia", "7b")])
    text = flat((await compose(store, config, "ana@example.org")).text)
    assert "At school: Designated safeguarding lead (ask the school office)" in text
    assert "* Childline, 0800 1111:" in text and "* Samaritans, 116 123:" in text and "CVV" not in text
    assert "cannot promise to keep what you tell it secret" in text
    contact = SafeguardingContact(name="Ana Souza", email="orientacao@escola.example", phone="(11) 3000-0000")
    brazilian = config.with_node(reports=replace(config.node.reports, language="pt-BR", safeguarding_contact=contact))
    mail = await compose(store, brazilian, "ana@example.org")
    text = flat(mail.text)
    assert "Na escola: Ana Souza, Coordenação pedagógica ou orientação educacional, (11) 3000-0000, orientacao@escola.example" in text
    assert "* CVV – Centro de Valorização da Vida, 188:" in text and "* Disque 100, 100:" in text and "Conselho Tutelar" in text
    assert "(ECA, artigos 13 e 245)" in text and "Childline" not in text
    assert 'href="https://cvv.org.br/"' in mail.html and "mailto:orientacao@escola.example" in mail.html


def test_every_language_has_its_countrys_help_and_their_sites_stay_reachable():
    example = load_config(Path(__file__).resolve().parents[1] / "config.yaml")
    essential = set(example.policy.essential_names)
    for language in i18n.LANGUAGES:
        assert COUNTRY_LAW[language.tag].rights  # every school language has its privacy law
        for line in COUNTRY_HELP[language.tag].helplines:
            host = urlsplit(line.url).hostname or ""
            assert any(host == name or host.endswith("." + name) for name in essential), line.url


async def test_a_parent_who_never_chose_gets_the_schools_language(store: Store, config: Config):
    await add_parent(store, "rui@example.org", [("Caio", "7b")])
    await add_parent(store, "amy@example.org", [("Ben", "7b")], language="en")
    brazilian = config.with_node(reports=replace(config.node.reports, language="pt-BR"))
    never_chose = await compose(store, brazilian, "rui@example.org")
    chose = await compose(store, brazilian, "amy@example.org")
    assert never_chose is not None and never_chose.language == "pt-BR"
    assert never_chose.headers["Content-Language"] == "pt-BR"  # "the browser's" is no language for a mail
    assert never_chose.subject.startswith("Segurança on-line na escola")
    assert chose is not None and chose.language == "en"
    english_school = await compose(store, config, "rui@example.org")
    assert english_school is not None and english_school.language == "en"


async def test_a_running_week_says_so(store: Store, config: Config):
    await add_parent(store, "ana@example.org", [("Bia", "7b")])
    mail = await compose(store, config, "ana@example.org", now=on(4, 16))  # Friday afternoon
    assert mail is not None and "Week of 9–15 November (this week so far)" in mail.text


async def test_no_digest_without_a_class_with_a_report(store: Store, config: Config):
    await store.create_user("lone@example.org", "parent", "!")
    assert await compose(store, config, "lone@example.org") is None
    await add_parent(store, "gone@example.org", [("Eva", "9z")])  # a class no longer configured
    assert await compose(store, config, "gone@example.org") is None
    # A week older than the counts kept has no report either.
    await add_parent(store, "ana@example.org", [("Bia", "7b")])
    assert await compose(store, config, "ana@example.org", now=SEND + 500 * 24 * HOUR) is None


# --- the job ------------------------------------------------------------------------------------


async def digests(store: Store) -> dict[str, str]:
    """Queued digests: dedup key -> recipient."""
    return {m.dedup_key: m.recipient for m in await store.list_messages(kind="digest")}


async def test_the_job_queues_one_digest_per_parent_and_week_even_after_a_restart(
    store: Store, config: Config, tmp_path: Path
):
    await add_parent(store, "ana@example.org", [("Bia", "7b"), ("Caio", "8c")], language="pt-BR")
    await add_parent(store, "off@example.org", [("Fabi", "7b")])
    await store.set_parent_digest("off@example.org", False)
    await store.create_user("lone@example.org", "parent", "!")  # no class
    await store.create_user("staff@example.org", "teacher", "!", groups=["7b"])
    await store.create_user("gil@example.org", "parent", "!", groups=["8c"])  # no profile: digest on
    await store.create_user("pat", "parent", "!", groups=["7b"])  # not a mail address
    await add_parent(store, "old@example.org", [("Gui", "7b")])
    await store.update_user("old@example.org", disabled=True)

    job = DigestJob(store, lambda: config)
    early = await job.run_once(now=SEND - 60)  # last week's moment is 7 days minus a minute ago
    assert early.state == "too-late" and early.week.start == date(2026, 11, 2)
    assert await digests(store) == {}

    run = await job.run_once(now=SEND + 60)
    assert (run.state, run.week.start, run.queued, run.already) == ("queued", WEEK_START, 2, 0)
    assert await digests(store) == {
        "digest:2026-11-09:ana@example.org": "ana@example.org",
        "digest:2026-11-09:gil@example.org": "gil@example.org",
    }
    message = next(m for m in await store.list_messages(kind="digest") if m.recipient == "ana@example.org")
    assert message.channel == "email" and message.subject.startswith("Segurança on-line na escola")
    assert "Turma 7b" in message.body_text and "Turma 8c" in message.body_html
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    assert (await job.run_once(now=SEND + 120)).state == "done"
    # A parent added after the send moment gets the week's digest on the next pass, once.
    await add_parent(store, "late@example.org", [("Lia", "8c")])
    late = await job.run_once(now=SEND + 180)
    assert (late.state, late.queued, late.already) == ("queued", 1, 0)
    assert "digest:2026-11-09:late@example.org" in await digests(store)
    assert (await job.run_once(now=SEND + 240)).state == "done"
    # So does one given a class after it.
    await store.update_user("lone@example.org", groups=["7b"])
    assert (await job.run_once(now=SEND + 300)).queued == 1
    assert (await job.run_once(now=SEND + 360)).state == "done"
    # A restart: a new job and a new store object over the same database queue nothing new.
    await store.close()
    reopened = await open_store(StoreConfig(node="test"), tmp_path)
    try:
        again = await DigestJob(reopened, lambda: config).run_once(now=SEND + 3600)
        assert (again.state, again.queued, again.already) == ("queued", 0, 4)
        assert len(await reopened.list_messages(kind="digest")) == 4
    finally:
        await reopened.close()


@pytest.mark.parametrize(("late", "queued"), [(5 * 24 * HOUR, 1), (LATE_LIMIT - 1, 1), (LATE_LIMIT + 1, 0)])
async def test_a_late_start_still_sends_within_six_days(store: Store, config: Config, late: float, queued: int):
    await add_parent(store, "ana@example.org", [("Bia", "7b")])
    run = await DigestJob(store, lambda: config).run_once(now=SEND + late)
    assert run.week.start == WEEK_START and run.queued == queued
    assert run.state == ("queued" if queued else "too-late")


async def test_a_friday_digest_covers_the_week_so_far(store: Store, config: Config):
    await add_parent(store, "ana@example.org", [("Bia", "7b")])
    friday = config.with_node(reports=replace(config.node.reports, digest_day="fri", digest_time="16:00"))
    run = await DigestJob(store, lambda: friday).run_once(now=on(4, 16) + 60)
    assert run.week.start == WEEK_START and run.queued == 1
    [message] = await store.list_messages(kind="digest")
    assert "Week of 9–15 November (this week so far)" in message.body_text
    assert "33 protected lookups" in message.body_text  # every event of the week so far


async def test_the_job_does_nothing_when_off_or_when_another_node_leads(store: Store, config: Config, tmp_path: Path):
    await add_parent(store, "ana@example.org", [("Bia", "7b")])
    no_mail = config.with_node(mail=replace(config.node.mail, host=""))
    assert (await DigestJob(store, lambda: no_mail).run_once(now=SEND + 60)).state == "off"
    no_digest = config.with_node(reports=replace(config.node.reports, digest=False))
    assert (await DigestJob(store, lambda: no_digest).run_once(now=SEND + 60)).state == "off"
    other = await open_store(StoreConfig(node="other-node"), tmp_path)
    try:
        assert await other.acquire_lease("digest", ttl=600, now=SEND)
        assert (await DigestJob(store, lambda: config).run_once(now=SEND + 60)).state == "standby"
    finally:
        await other.close()
    assert await digests(store) == {}
    # The config is read on every pass: turned on, the next pass queues.
    current = no_mail
    job = DigestJob(store, lambda: current)
    assert (await job.run_once(now=SEND + 601)).state == "off"
    current = config
    assert (await job.run_once(now=SEND + 602)).queued == 1


# --- the store (SQLite and PostgreSQL) ---------------------------------------------------------


async def test_the_digest_setting_is_kept_in_the_parents_profile(store_factory: StoreFactory):
    store = await store_factory()
    await store.create_user("ana@example.org", "parent", "!", groups=["7b"])
    assert not await store.set_parent_digest("ana@example.org", False)  # no profile yet
    profile = await store.save_parent_profile("ana@example.org", [("Bia", "7b")])
    assert profile.digest is True  # on unless turned off
    assert await store.set_parent_digest("ana@example.org", False)
    again = await store.save_parent_profile("ana@example.org", [("Bia", "7b"), ("Caio", "8c")])
    assert again.digest is False and again.children == (("Bia", "7b"), ("Caio", "8c"))  # kept
    assert [(p.user, p.digest) for p in await store.list_parent_profiles()] == [("ana@example.org", False)]
    assert await store.set_parent_digest("ana@example.org", True)
    assert (await store.get_parent_profile("ana@example.org")).digest is True
