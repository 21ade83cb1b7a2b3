"""Safe search by DNS: answer a search engine's name with a CNAME to its filtered front end.

Google, Bing, DuckDuckGo and YouTube each run a host that always serves filtered results
(``forcesafesearch.google.com`` and friends) and document pointing their main names at it
as the way to enforce safe search network-wide. Users cannot switch it off, because the
switch lives on the server they are sent to.
"""

from __future__ import annotations

from filterdns.config.model import SafeSearchConfig

# Every country domain Google search answers on, as the part after "google.".
GOOGLE_SUFFIXES = (
    "com", "ad", "ae", "al", "am", "as", "at", "az", "ba", "be", "bf", "bg", "bi", "bj", "bs",
    "bt", "by", "ca", "cat", "cd", "cf", "cg", "ch", "ci", "cl", "cm", "cn", "cv", "cz", "de",
    "dj", "dk", "dm", "dz", "ee", "es", "fi", "fm", "fr", "ga", "ge", "gg", "gl", "gm", "gr",
    "gy", "hn", "hr", "ht", "hu", "ie", "im", "iq", "is", "it", "je", "jo", "kg", "ki", "kz",
    "la", "li", "lk", "lt", "lu", "lv", "md", "me", "mg", "mk", "ml", "mn", "mu", "mv", "mw",
    "ne", "nl", "no", "nr", "nu", "pl", "pn", "ps", "pt", "ro", "rs", "ru", "rw", "sc", "se",
    "sh", "si", "sk", "sm", "sn", "so", "sr", "st", "td", "tg", "tl", "tm", "tn", "to", "tt",
    "vu", "ws",
    "co.ao", "co.bw", "co.ck", "co.cr", "co.id", "co.il", "co.in", "co.jp", "co.ke", "co.kr",
    "co.ls", "co.ma", "co.mz", "co.nz", "co.th", "co.tz", "co.ug", "co.uk", "co.uz", "co.ve",
    "co.vi", "co.za", "co.zm", "co.zw",
    "com.af", "com.ag", "com.ai", "com.ar", "com.au", "com.bd", "com.bh", "com.bn", "com.bo",
    "com.br", "com.bz", "com.co", "com.cu", "com.cy", "com.do", "com.ec", "com.eg", "com.et",
    "com.fj", "com.gh", "com.gi", "com.gt", "com.hk", "com.jm", "com.kh", "com.kw", "com.lb",
    "com.ly", "com.mm", "com.mt", "com.mx", "com.my", "com.na", "com.ng", "com.ni", "com.np",
    "com.om", "com.pa", "com.pe", "com.pg", "com.ph", "com.pk", "com.pr", "com.py", "com.qa",
    "com.sa", "com.sb", "com.sg", "com.sl", "com.sv", "com.tj", "com.tr", "com.tw", "com.ua",
    "com.uy", "com.vc", "com.vn",
)  # fmt: skip

GOOGLE_TARGET = "forcesafesearch.google.com"
BING_TARGET = "strict.bing.com"
DUCKDUCKGO_TARGET = "safe.duckduckgo.com"
YOUTUBE_TARGETS = {"strict": "restrict.youtube.com", "moderate": "restrictmoderate.youtube.com"}

_SEARCH_TARGETS: dict[str, str] = {
    **{f"{host}google.{suffix}": GOOGLE_TARGET for suffix in GOOGLE_SUFFIXES for host in ("", "www.")},
    **dict.fromkeys(("www.bing.com", "bing.com"), BING_TARGET),
    **dict.fromkeys(
        ("duckduckgo.com", "www.duckduckgo.com", "start.duckduckgo.com", "html.duckduckgo.com"),
        DUCKDUCKGO_TARGET,
    ),
}

_YOUTUBE_NAMES = frozenset(
    (
        "www.youtube.com",
        "m.youtube.com",
        "youtubei.googleapis.com",
        "youtube.googleapis.com",
        "www.youtube-nocookie.com",
    )
)


def safe_search_target(name: str, config: SafeSearchConfig) -> str | None:
    """The CNAME target that enforces safe search for ``name`` under ``config``, or None.

    ``name`` must be lower case without the trailing dot, as the query path hands it over."""
    if config.search:
        target = _SEARCH_TARGETS.get(name)
        if target is not None:
            return target
    if config.youtube != "off" and name in _YOUTUBE_NAMES:
        return YOUTUBE_TARGETS[config.youtube]
    return None
