"""Deterministic, realistic-looking domain names.

Block lists are not random strings: they are brand-like words glued together, tracker hosts
under CDN-ish prefixes, DGA-style gibberish, many TLDs. An index that only ever sees one shape
(say, short ``.com`` names) would flatter compact encodings, so the generator mixes shapes and
lengths (about 7 to 40 characters). Everything is drawn from one seeded ``random.Random`` so
that a seed and a count always give the same names in the same order.
"""

from __future__ import annotations

import random
import string

_STEMS = (
    "cloud shop news play game bet casino star live media tube data stream pixel track ads "
    "click win lucky free best top hot fast mega super web link zone hub box city world tech "
    "soft app mail secure login bank pay cash crypto coin trade deal sale market store book "
    "film movie music radio sport team club fan chat meet date love fun joy smart quick easy "
    "daily global local prime royal gold silver blue red green black white dark light sun "
    "moon sky sea fire ice rock wolf fox tiger lion eagle dragon ninja hero magic dream "
    "planet space rocket robot cyber digital online mobile photo video image cam show view "
    "look find search seek info wiki guide tips help host server metric stat count pulse "
    "beacon tag sync bid adv promo offer bonus spin slot poker bingo vault nova pro max plus "
    "one go true net"
).split()

_PREFIXES = (
    "www m cdn api ads track static img mail app go click stats log s1 s2 a b eu us t pixel "
    "sync events collect metrics edge"
).split()

# (TLD, weight): roughly the spread seen in public block lists, .com first.
_TLDS = (
    ("com", 45), ("net", 10), ("org", 6), ("ru", 5), ("de", 3), ("info", 4), ("xyz", 4),
    ("top", 4), ("io", 3), ("co.uk", 2), ("online", 2), ("site", 2), ("club", 2), ("com.br", 2),
    ("pl", 2), ("fr", 2), ("biz", 1), ("cn", 2), ("in", 1), ("com.au", 1), ("tk", 1), ("live", 1),
)

_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"
_ALNUM = string.ascii_lowercase + string.digits


class NameGenerator:
    """Draws names; ``registrable()`` gives ``label.tld``, ``host()`` maybe a subdomain of one."""

    def __init__(self, seed: int | str):
        self._random = random.Random(seed)
        self._tlds = [tld for tld, _ in _TLDS]
        self._tld_weights = [weight for _, weight in _TLDS]

    def registrable(self) -> str:
        tld = self._random.choices(self._tlds, self._tld_weights)[0]
        return f"{self._label()}.{tld}"

    def host(self) -> str:
        """A registrable name, or (40 %) a host under one, as trackers and CDNs use."""
        base = self.registrable()
        draw = self._random.random()
        if draw < 0.60:
            return base
        if draw < 0.90:
            return f"{self._random.choice(_PREFIXES)}.{base}"
        if draw < 0.97:
            return f"{self._gibberish(4, 10)}.{base}"
        return f"{self._random.choice(_PREFIXES)}.{self._gibberish(3, 6)}.{base}"

    def _label(self) -> str:
        pick = self._random.random()
        stem = self._random.choice
        if pick < 0.40:
            return stem(_STEMS) + stem(_STEMS)
        if pick < 0.60:
            return self._pseudo_word()
        if pick < 0.75:
            return f"{stem(_STEMS)}-{stem(_STEMS)}"
        if pick < 0.85:
            return stem(_STEMS) + str(self._random.randrange(1, 10_000))
        if pick < 0.95:
            return self._pseudo_word() + stem(_STEMS)
        return self._gibberish(8, 16)

    def _pseudo_word(self) -> str:
        choice = self._random.choice
        syllables = self._random.randint(2, 4)
        return "".join(choice(_CONSONANTS) + choice(_VOWELS) + (choice(_CONSONANTS) if self._random.random() < 0.3 else "")
                       for _ in range(syllables))

    def _gibberish(self, shortest: int, longest: int) -> str:
        """DGA- or tracker-style label; starts with a letter so no label looks numeric."""
        length = self._random.randint(shortest, longest)
        return self._random.choice(string.ascii_lowercase) + "".join(self._random.choices(_ALNUM, k=length - 1))


def is_covered(name: str, listed: set[str] | frozenset[str]) -> bool:
    """True if ``name`` or a parent of it is listed: list entries cover their subdomains."""
    if name in listed:
        return True
    dot = name.find(".")
    while dot != -1:
        if name[dot + 1:] in listed:
            return True
        dot = name.find(".", dot + 1)
    return False
