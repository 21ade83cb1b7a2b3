"""The weekly digest: one mail per parent summing up the week of each of their children's
class groups, in the parent's language, with a link to each full report and a link that
unsubscribes.

The numbers are those of the weekly class report (``weekly.load_report``), masked the same
way, so a digest can never say more than the report page does: counts per class, never a
domain, a client or a device. Then one section per child with a take-home device linked to
the parent: their week at home (``home_week``), as the family page shows it to that parent
only. The mail is rendered from ``parents/mail/digest.txt`` (plain
text) and ``parents/mail/digest.html`` (simple HTML with inline styles: mail clients drop
stylesheets), through the same gettext catalogues as the parents' pages.

Which week: the one (Monday to Sunday, school time) holding the day before the send day,
so a digest sent on Monday covers the week just ended and one sent on Friday the week so
far.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import jinja2

from filterdns import i18n
from filterdns.config.model import Config
from filterdns.links import unsubscribe_path, unsubscribe_secret, unsubscribe_token
from filterdns.reports.guidance import GENERAL_TIP
from filterdns.reports.help import SchoolHelp
from filterdns.reports.home_week import ChildAtHome, load_home_week
from filterdns.reports.privacy import PrivacyFacts
from filterdns.reports.weekly import ReportSettings, Week, WeeklyReport, find_group, load_report
from filterdns.store import Store, User
from filterdns.store.parents import ParentProfile
from filterdns.ui import TEMPLATES_DIR

TEXT_TEMPLATE = "parents/mail/digest.txt"
HTML_TEMPLATE = "parents/mail/digest.html"

SUBJECT = i18n.N_("Online safety at school: week of %(week)s")


@dataclass(frozen=True, slots=True)
class ClassSection:
    """One class group in a digest: its report, the parent's children in it, and the
    address of the full report of that week."""

    report: WeeklyReport
    children: tuple[str, ...]
    url: str


@dataclass(frozen=True, slots=True)
class Tip:
    """The week's family tip; ``title`` names its category ("" for the general tip)."""

    title: str
    text: str


@dataclass(frozen=True, slots=True)
class DigestMail:
    recipient: str
    week: Week
    language: str  # the tag it is written in
    subject: str
    text: str
    html: str
    unsubscribe_url: str

    @property
    def dedup_key(self) -> str:
        """One digest per parent and week, however often it is queued."""
        return f"digest:{self.week.start.isoformat()}:{self.recipient}"

    @property
    def headers(self) -> dict[str, str]:
        """RFC 2369 / RFC 8058: mail programs show an "unsubscribe" button that works in
        one click (a POST to the URL, which the console accepts without a session). The
        language is the one the mail is written in (RFC 3282): the parent's, or the
        school's when they left it to the browser, which a mail has none of."""
        return {
            "List-Unsubscribe": f"<{self.unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Content-Language": self.language,
        }


def digest_week(send_day: date, zone: ZoneInfo) -> Week:
    """The week a digest sent on ``send_day`` covers: the one holding the day before."""
    return Week.containing(send_day - timedelta(days=1), zone)


def week_label(week: Week, translator: i18n.Translator) -> str:
    """The week as people say it, in the reader's language: "9–15 November", naming both
    months (or years) when the week spans two."""
    return translator.span(week.start, week.end, year=False)


def family_tip(reports: Sequence[WeeklyReport], week: Week) -> Tip:
    """One tip: about the category with the most blocked lookups shown this week; when
    no count is shown, about one of the classes' blocked categories, taking turns week
    by week (the same for everyone that week); else the general tip."""
    lines = list({line.category: line for report in reports for line in report.categories}.values())
    turn = week.start.toordinal() // 7
    shown = [line for line in lines if line.blocked.value]
    if shown:
        line = max(shown, key=lambda line: line.blocked.value or 0)
    elif lines:
        line = lines[turn % len(lines)]
    else:
        return Tip("", GENERAL_TIP)
    return Tip(line.title, line.tips[turn % len(line.tips)])


@functools.cache
def mail_environment() -> jinja2.Environment:
    """Templates for mail: the HTML part autoescaped, the text part not (it is no HTML)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    i18n.install(env)
    env.filters["wrap"] = wrap
    return env


def wrap(text: str, width: int = 72) -> str:
    """A paragraph of the text part, filled to ``width`` without breaking words or links."""
    return "\n".join(textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False))


def render_digest(
    recipient: str, week: Week, sections: Sequence[ClassSection], language: i18n.Language, *,
    privacy: PrivacyFacts, school_help: SchoolHelp, unsubscribe_url: str, at_home: Sequence[ChildAtHome] = (),
) -> DigestMail:  # fmt: skip
    """The digest mail of ``sections`` (the classes' reports of ``week``) and of the
    recipient's children's weeks ``at_home``, in ``language``, ending with where to get help
    (``school_help``) and what the school keeps and who sees it (``privacy``)."""
    translator = i18n.Translator(language)
    label = week_label(week, translator)
    context = {
        "i18n": translator,
        "week_label": label,
        "finished": all(section.report.finished for section in sections),
        "sections": sections,
        "at_home": at_home,
        "mask_below": sections[0].report.mask_below if sections else 0,
        "privacy": privacy.sentences(translator),
        "help": school_help,
        "tip": family_tip([section.report for section in sections], week),
        "unsubscribe_url": unsubscribe_url,
    }
    env = mail_environment()
    return DigestMail(
        recipient=recipient,
        week=week,
        language=language.tag,
        subject=translator.gettext(SUBJECT) % {"week": label},
        text=env.get_template(TEXT_TEMPLATE).render(context),
        html=env.get_template(HTML_TEMPLATE).render(context),
        unsubscribe_url=unsubscribe_url,
    )


class DigestComposer:
    """Composes the digests of one week, as of ``now``: each class's report is loaded once
    however many parents get it, with ``config.node.reports.mask_below``."""

    def __init__(self, store: Store, config: Config, week: Week, *, now: float) -> None:
        self.store = store
        self.config = config
        self.week = week
        self.now = now
        self._settings = ReportSettings(mask_below=config.node.reports.mask_below, trend_weeks=1)
        self._reports: dict[str, WeeklyReport | None] = {}
        self._secret: str | None = None

    async def compose(
        self, user: User, profile: ParentProfile | None, at_home: Sequence[tuple[str, str]] = ()
    ) -> DigestMail | None:
        """``user``'s digest in their language (the school's, ``reports.language``, if they
        chose none), covering the class groups they may see and the week at home of their
        children ``at_home`` ((pupil id, name) pairs linked to their account); ``None`` if
        none of the groups has a report for the week (no groups, groups no longer
        configured, or a week older than the counts kept) and no child is at home."""
        children: dict[str, list[str]] = {}
        for child, group in profile.children if profile else ():
            children.setdefault(group, []).append(child)
        language = i18n.supported(profile.language if profile else "") or self.school_language
        weeks = [
            ChildAtHome(name, await load_home_week(self.store, pupil, self.week.since, self.week.until))
            for pupil, name in at_home
        ]
        return await self.compose_for(user.name, user.groups, children, language, at_home=weeks)

    @property
    def school_language(self) -> i18n.Language:
        return i18n.language(self.config.node.reports.language)

    async def compose_for(
        self, recipient: str, groups: Sequence[str], children: Mapping[str, Sequence[str]], language: i18n.Language,
        *, at_home: Sequence[ChildAtHome] = (),
    ) -> DigestMail | None:  # fmt: skip
        """The digest of ``groups`` (``children``: group -> the recipient's children in it)
        and of the weeks ``at_home`` for ``recipient``, in ``language``: a parent's, or the
        copy staff preview (which has no child at home)."""
        sections = []
        for name in groups:
            report = await self._report(name)
            if report is not None:
                sections.append(ClassSection(report, tuple(children.get(name, ())), self._report_url(name)))
        if not sections and not at_home:
            return None
        if self._secret is None:
            self._secret = await unsubscribe_secret(self.store)
        return render_digest(
            recipient, self.week, sections, language, privacy=PrivacyFacts.of(self.config),
            school_help=SchoolHelp.of(self.config), at_home=at_home,
            unsubscribe_url=self.config.node.web.base_url + unsubscribe_path(unsubscribe_token(self._secret, recipient)),
        )  # fmt: skip

    async def _report(self, name: str) -> WeeklyReport | None:
        if name not in self._reports:
            group = find_group(self.config, name)
            report = None
            if group is not None:
                report = await load_report(
                    self.store, self.config, group, self.week.start, settings=self._settings, now=self.now
                )
            # load_report moves a week outside retention to one inside it: not this week.
            self._reports[name] = report if report is not None and report.week == self.week else None
        return self._reports[name]

    def _report_url(self, group: str) -> str:
        query = urlencode({"week": self.week.start.isoformat()})
        return f"{self.config.node.web.base_url}/reports/{quote(group, safe='')}?{query}"
