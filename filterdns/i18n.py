"""Languages of what families read, the parents' pages and the weekly digest mail:
gettext catalogues, choosing a language, and translating Jinja templates per render.
It sits below both the console (``web``) and the reports, so each can use it without the
other. ``N_`` marks a message id in Python code so that it is listed in the catalogues.

Catalogues are the ``.po`` files in ``filterdns/locale/<locale>/LC_MESSAGES/filterdns.po``;
they are compiled in memory the first time a language is used (``compile_po`` does what
``msgfmt`` does), so there is no build step and no binary file to keep in step with its
source. ``en`` holds every message id with empty translations: it is the template to copy
for a new language, which then needs one ``Language`` line below.

In templates, ``_("...")`` translates a literal (Jinja's i18n extension, new-style: keyword
arguments fill ``%(name)s``); the ``translate`` filter translates a *data* string, such as
a category description from the configuration, and keeps it escaped (``_`` would mark it
safe HTML). The language is per request: the context variable ``i18n`` (a ``Translator``)
carries it, so one Jinja environment serves every language at once.
"""

from __future__ import annotations

import ast
import functools
import gettext
import io
import struct
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import jinja2
from jinja2 import pass_context
from jinja2.runtime import Context

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "filterdns"
_MO_MAGIC = 0x950412DE


def N_(message: str) -> str:
    """Mark ``message`` for the translation catalogues; it is translated when shown."""
    return message


@dataclass(frozen=True, slots=True)
class Language:
    tag: str  # BCP 47, as in <html lang> and ?lang=: "pt-BR"
    locale: str  # the catalogue's folder: "pt_BR"
    name: str  # in the language itself, for the switcher
    thousands: str  # thousands separator


LANGUAGES: tuple[Language, ...] = (
    Language("en", "en", "English", ","),
    Language("pt-BR", "pt_BR", "Português (Brasil)", "."),
)
DEFAULT = LANGUAGES[0]
_BY_TAG = {language.tag.lower(): language for language in LANGUAGES}

MONTHS = (
    N_("January"), N_("February"), N_("March"), N_("April"), N_("May"), N_("June"), N_("July"),
    N_("August"), N_("September"), N_("October"), N_("November"), N_("December"),
)  # fmt: skip
DAY_MONTH_YEAR = N_("%(day)s %(month)s %(year)s")
DAY_MONTH = N_("%(day)s %(month)s")
MONTH_YEAR = N_("%(month)s %(year)s")
SPAN_IN_ONE_MONTH = N_("%(first)s–%(last)s %(month)s")  # "9–15 November"
SPAN_ACROSS_MONTHS = N_("%(first)s – %(last)s")  # "26 October – 1 November"


# --- catalogues ---------------------------------------------------------------------------


def parse_po(text: str) -> dict[str, str]:
    """The translated messages of a ``.po`` file, keyed as in a ``.mo`` file (a plural
    entry's id is ``singular\\0plural``, its text the forms joined by ``\\0``). Fuzzy and
    untranslated entries are left out, so their English shows."""
    messages: dict[str, str] = {}
    entry: dict[str, list[str]] = {}
    current: list[str] | None = None
    fuzzy = False

    def finish() -> None:
        nonlocal entry, current, fuzzy
        if "msgid" in entry and not fuzzy:
            key = "".join(entry["msgid"])
            if "msgid_plural" in entry:
                key += "\0" + "".join(entry["msgid_plural"])
            forms = [k for k in entry if k.startswith("msgstr")]
            value = "\0".join("".join(entry[k]) for k in sorted(forms))
            if value.strip("\0") or key == "":
                messages[key] = value
        entry, current, fuzzy = {}, None, False

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            finish()
        elif line.startswith("#"):
            if "msgid" in entry:
                finish()
            fuzzy = fuzzy or (line.startswith("#,") and "fuzzy" in line)
        elif line.startswith('"'):
            if current is None:
                raise ValueError(f"line {number}: a string outside an entry")
            current.append(_po_string(line, number))
        else:
            keyword, _, rest = line.partition(" ")
            if keyword == "msgid" and "msgid" in entry:
                finish()
            if keyword not in ("msgid", "msgid_plural", "msgstr") and not keyword.startswith("msgstr["):
                raise ValueError(f"line {number}: unknown keyword {keyword!r}")
            current = entry.setdefault(keyword, [])
            current.append(_po_string(rest.strip(), number))
    finish()
    return messages


def _po_string(quoted: str, number: int) -> str:
    if not (len(quoted) >= 2 and quoted[0] == quoted[-1] == '"'):
        raise ValueError(f"line {number}: expected a quoted string")
    value = ast.literal_eval(quoted)  # PO strings use C escapes, which Python reads alike
    assert isinstance(value, str)
    return value


def compile_po(text: str) -> bytes:
    """A ``.po`` file's text as ``.mo`` bytes (GNU format: header, two tables of
    (length, offset), then the NUL-terminated ids and texts, ids sorted bytewise)."""
    pairs = sorted((k.encode(), v.encode()) for k, v in parse_po(text).items())
    header_size = 7 * 4
    ids_table = header_size
    texts_table = ids_table + 8 * len(pairs)
    data_start = texts_table + 8 * len(pairs)
    ids = b"".join(k + b"\0" for k, _ in pairs)
    table_ids: list[int] = []
    table_texts: list[int] = []
    id_offset, text_offset = data_start, data_start + len(ids)
    for key, value in pairs:
        table_ids += [len(key), id_offset]
        table_texts += [len(value), text_offset]
        id_offset += len(key) + 1
        text_offset += len(value) + 1
    header = struct.pack("<7I", _MO_MAGIC, 0, len(pairs), ids_table, texts_table, 0, data_start)
    tables = struct.pack(f"<{len(table_ids) + len(table_texts)}I", *table_ids, *table_texts)
    return header + tables + ids + b"".join(v + b"\0" for _, v in pairs)


def po_path(language: Language) -> Path:
    return LOCALE_DIR / language.locale / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def catalogue(tag: str) -> gettext.NullTranslations:
    """The compiled catalogue of a language (compiled once per process)."""
    return gettext.GNUTranslations(io.BytesIO(compile_po(po_path(language(tag)).read_text(encoding="utf-8"))))


# --- choosing a language -------------------------------------------------------------------


def language(tag: str | None) -> Language:
    """The supported language for ``tag`` (exact, case-insensitive), else the default."""
    return _BY_TAG.get((tag or "").lower(), DEFAULT)


def supported(tag: str | None) -> Language | None:
    return _BY_TAG.get((tag or "").lower())


def negotiate(accept_language: str | None, default: Language = DEFAULT) -> Language:
    """The best supported language for an ``Accept-Language`` header: by quality, an
    exact tag first, else the same primary language ("pt-PT" and "pt" read pt-BR); else
    ``default`` (the school's language, ``reports.language``)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag in _BY_TAG:
            return _BY_TAG[tag]
        primary = tag.split("-")[0]
        for language_ in LANGUAGES:
            if language_.tag.lower().split("-")[0] == primary:
                return language_
    return default


def choose(
    *, asked: str | None, saved: str | None, accept_language: str | None, default: Language = DEFAULT
) -> Language:
    """The language of a page: asked for in the URL, else the account's setting, else the
    browser's, else ``default`` (the school's)."""
    return supported(asked) or supported(saved) or negotiate(accept_language, default)


# --- per request ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Translator:
    """One request's language: messages, numbers and dates in it."""

    language: Language

    def gettext(self, message: str) -> str:
        return catalogue(self.language.tag).gettext(message) if message else message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return catalogue(self.language.tag).ngettext(singular, plural, n)

    def number(self, n: int) -> str:
        return f"{n:,}".replace(",", self.language.thousands)

    def day(self, when: date, *, year: bool = True) -> str:
        """E.g. "23 November 2026", "23 de novembro de 2026"."""
        month = self.gettext(MONTHS[when.month - 1])
        pattern = self.gettext(DAY_MONTH_YEAR if year else DAY_MONTH)
        return pattern % {"day": when.day, "month": month, "year": when.year}

    def span(self, first: date, last: date, *, year: bool = True) -> str:
        """Two days as people say them: "23–29 November 2026", "23 a 29 de novembro de
        2026"; both months when they differ, and both years when those differ (always,
        without ``year``: "9–15 November", and "29 December 2025 – 4 January 2026")."""
        if (first.year, first.month) == (last.year, last.month):
            month = self.gettext(MONTHS[first.month - 1])
            if year:
                month = self.gettext(MONTH_YEAR) % {"month": month, "year": first.year}
            return self.gettext(SPAN_IN_ONE_MONTH) % {"first": first.day, "last": last.day, "month": month}
        years = first.year != last.year
        return self.gettext(SPAN_ACROSS_MONTHS) % {
            "first": self.day(first, year=years),
            "last": self.day(last, year=year or years),
        }


def translator_of(context: Context) -> Translator:
    found = context.get("i18n")
    return found if isinstance(found, Translator) else Translator(DEFAULT)


@pass_context
def _gettext(context: Context, message: str) -> str:
    return translator_of(context).gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return translator_of(context).ngettext(singular, plural, n)


@pass_context
def _translate(context: Context, text: str) -> str:
    """Filter: a data string in the page's language when the catalogue has it, as plain
    text (still escaped by autoescape)."""
    return str(translator_of(context).gettext(str(text)))


def install(env: jinja2.Environment) -> None:
    """Give ``env`` the i18n extension, with translations taken per render from ``i18n``."""
    if "jinja2.ext.InternationalizationExtension" not in env.extensions:
        env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["translate"] = _translate
