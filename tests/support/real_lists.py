"""The example config.yaml with its catalogue's URL sources replaced by the real public lists in
``../shared/data/blocklists`` (see that folder's README), for tests of what a school would get.

The shared folder holds most but not all of the catalogue's lists (HaGeZi only as a 2022
snapshot, UT1 'ai' and 'phishing' not at all); sources without a copy are left out and named
in ``missing``, so a test can say what it ran on."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from filterdns.config.loader import load_config
from filterdns.config.model import Config, SourceConfig

REPO = Path(__file__).resolve().parents[2]
# FILTERDNS_TEST_DATA points elsewhere, e.g. from a git worktree that has no shared/ beside it.
DATA = Path(os.environ.get("FILTERDNS_TEST_DATA") or REPO.parent / "shared" / "data")
LISTS = DATA / "blocklists"
TOP_DOMAINS = DATA / "traffic" / "top-domains.txt"
ABSENT_REASON = f"the real lists are not present at {LISTS} (a checkout of shared/data beside the repository)"

# Catalogue URL (a pattern on its tail) -> the shared copy, relative to LISTS.
_COPIES = {
    r"ut1-blacklists/.*/blacklists/(\w[\w-]*)/domains$": "ut1/{}",
    r"Sinfonietta/hostfiles/master/(\w+)-hosts$": "sinfonietta/{}",
    r"blocklistproject.github.io/Lists/alt-version/(\w+)-nl\.txt$": "blocklistproject/{}",
    r"hagezi/dns-blocklists/main/wildcard/([\w.-]+)-onlydomains\.txt$": "hagezi/{}.domains",
}
# Where the shared folder names a list differently from its publisher.
_RENAMED = {
    "ut1/drogue": "ut1/drugs",
    "ut1/agressif": "ut1/aggressive",
    "sinfonietta/pornography": "sinfonietta/porn",
    "blocklistproject/phishing": "blocklistproject/phishing.nl",
}


def _local_copy(url: str) -> Path | None:
    for pattern, template in _COPIES.items():
        match = re.search(pattern, url)
        if match is None:
            continue
        stem = template.format(match.group(1))
        stem = _RENAMED.get(stem, stem)
        for suffix in (".txt", ".txt.gz"):
            path = LISTS / (stem + suffix)
            if path.exists():
                return path
    return None


def example_config_with_real_lists() -> tuple[Config, list[str]]:
    """The example config, every URL source read from its shared copy; and the labels of the
    sources that have none."""
    config = load_config(REPO / "config.yaml")
    missing: list[str] = []
    categories = []
    for category in config.policy.categories:
        sources = []
        for source in category.sources:
            if not source.is_url:
                sources.append(source)
            elif (copy := _local_copy(source.location)) is not None:
                sources.append(SourceConfig(str(copy), "auto", source.label))
            else:
                missing.append(source.label)
        categories.append(dataclasses.replace(category, sources=tuple(sources)))
    return config.with_policy(categories=tuple(categories)), missing
