"""Building the category index from the configured categories and their list sources.

Synchronous and slow for big lists (about a second per million names): callers run it in a
thread (or a process: the result pickles) and swap the result in when it is complete. It never
touches the network: URL sources are read from the copies :mod:`filterdns.policy.sources`
keeps in the cache folder. A source that cannot be read becomes a status with an error, never an
exception, so one broken list cannot stop the resolver from starting.
"""

from __future__ import annotations

import ctypes
import logging
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from filterdns.config.model import CategoryConfig, SourceConfig, inside
from filterdns.policy.domainindex import MAX_CATEGORIES, DomainIndex, DomainIndexBuilder
from filterdns.policy.listformats import ParsedList, parse_lines, read_list_file
from filterdns.policy.listhealth import EssentialProbe, ListHealth, category_health
from filterdns.policy.sources import cached_copy_path

log = logging.getLogger("filterdns.lists")

INLINE_LOCATION = "inline"


@dataclass(slots=True)
class SourceStatus:
    """How one source of one category loaded, for the console, metrics and ``check-config``."""

    category: str
    location: str
    format: str
    entries: int  # block entries parsed (duplicates included)
    exceptions: int
    bad_lines: int
    bad_examples: list[tuple[int, str]]
    last_refresh: float | None  # unix time of the copy used (file mtime; downloads touch it on a 304)
    error: str | None
    # Well-formed lines a DNS filter cannot apply: cosmetic/URL adblock rules, IP addresses.
    unsupported_lines: int = 0
    label: str = ""  # SourceConfig.label
    # Entries of a licensed URL list that name one page: counted, not enforceable by DNS.
    url_entries: int = 0
    # The essential names this source lists (or lists a parent of), sorted.
    essential_blocked: tuple[str, ...] = ()


@dataclass(slots=True)
class CategorySet:
    """The loaded categories: bit ``i`` of every mask is category ``names[i]``."""

    names: tuple[str, ...]
    index: DomainIndex
    statuses: list[SourceStatus] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)
    health: ListHealth = field(default_factory=ListHealth)

    @property
    def essential_hits(self) -> dict[str, list[tuple[str, str]]]:
        """Essential name -> (category, source label) of every source that would block it."""
        hits: dict[str, list[tuple[str, str]]] = {}
        for status in self.statuses:
            for name in status.essential_blocked:
                hits.setdefault(name, []).append((status.category, status.label))
        return hits

    def mask_of(self, names: Iterable[str]) -> int:
        """The mask of the named categories; KeyError for a name that is not a category."""
        mask = 0
        for name in names:
            try:
                mask |= 1 << self.names.index(name)
            except ValueError:
                raise KeyError(name) from None
        return mask

    def names_in(self, mask: int) -> list[str]:
        """The categories in ``mask``, in bit order."""
        return [name for bit, name in enumerate(self.names) if mask >> bit & 1]


def build_category_set(
    categories: Sequence[CategoryConfig],
    cache_dir: Path,
    base_dir: Path,
    roots: tuple[Path, ...] | None = None,
    essential: Iterable[str] = (),
) -> CategorySet:
    """Load every source of every category and index them. Local paths are relative to
    ``base_dir`` (the config file's folder) and are read only inside ``roots`` (default:
    ``base_dir``; the service passes ``Config.list_file_roots``), checked again here since a
    symlink may have changed since the config was; URL sources use their cached copy. Each
    source's status says which of the ``essential`` names it would block (list health)."""
    if len(categories) > MAX_CATEGORIES:
        raise ValueError(f"{len(categories)} categories configured; at most {MAX_CATEGORIES} are supported")
    started = time.monotonic()
    probe = EssentialProbe(essential)
    index, statuses = _index_sources(categories, cache_dir, base_dir, (base_dir,) if roots is None else roots, probe)
    entries: dict[str, int] = {}
    for status in statuses:
        entries[status.category] = entries.get(status.category, 0) + status.entries
    names = tuple(category.name for category in categories)
    health = category_health(names, index.mask_counts(), entries, probe.total)
    release_free_memory()
    failed = sum(status.error is not None for status in statuses)
    log.info(
        "lists loaded: %d distinct domains in %d categories from %d sources%s (%.2f s)",
        len(index),
        len(categories),
        len(statuses),
        f", {failed} unavailable" if failed else "",
        time.monotonic() - started,
    )
    return CategorySet(
        names=names,
        index=index,
        statuses=statuses,
        descriptions={category.name: category.description for category in categories},
        health=health,
    )


def _index_sources(
    categories: Sequence[CategoryConfig],
    cache_dir: Path,
    base_dir: Path,
    roots: tuple[Path, ...],
    probe: EssentialProbe,
) -> tuple[DomainIndex, list[SourceStatus]]:
    builder = DomainIndexBuilder()
    statuses: list[SourceStatus] = []
    for bit, category in enumerate(categories):
        for source in category.sources:
            status, parsed = _load_source(category.name, source, cache_dir, base_dir, roots)
            statuses.append(status)
            if parsed is not None:
                status.essential_blocked = probe.blocked_by(parsed.domains, parsed.exceptions)
                builder.add(parsed.domains, bit)
                builder.add(parsed.exceptions, bit, exception=True)
            _log_source(status)
            del parsed  # before the next list is read: a million names take ~80 MB
        if category.domains:
            parsed = parse_lines(category.domains, "domains")
            statuses.append(_status(category.name, INLINE_LOCATION, "domains", parsed, None))
            statuses[-1].essential_blocked = probe.blocked_by(parsed.domains)
            _log_source(statuses[-1])
            builder.add(parsed.domains, bit)
    return builder.build(), statuses


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, AttributeError, TypeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Give freed heap memory back to the system (glibc's ``malloc_trim``; elsewhere a no-op).

    A build frees about 100 MB of strings and dicts per million names, and glibc keeps freed
    heap memory inside the process: measured on a million names, the resident size after a
    build is +41 MB with this call and +71 MB without. :func:`build_category_set` calls it at
    its end; call it again after dropping a replaced category set to hand back its ~40 MB."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


ListStamp = tuple[tuple[str, int, int], ...]


def local_list_stamp(categories: Iterable[CategoryConfig], base_dir: Path) -> ListStamp:
    """Path, modification time and size of every local list file ((-1, -1) if missing): when
    the stamp changes, an admin has edited a file and the index must be built again even
    though the configuration is the same."""
    stamp = []
    for category in categories:
        for source in category.sources:
            if not source.is_url:
                path = base_dir / source.location
                try:
                    info = path.stat()
                    stamp.append((str(path), info.st_mtime_ns, info.st_size))
                except OSError:
                    stamp.append((str(path), -1, -1))
    return tuple(stamp)


def _load_source(
    category: str, source: SourceConfig, cache_dir: Path, base_dir: Path, roots: tuple[Path, ...]
) -> tuple[SourceStatus, ParsedList | None]:
    if source.is_url:
        path = cached_copy_path(cache_dir, source.location)
        if not path.exists():
            return _failed(category, source, "not downloaded yet (no cached copy)"), None
    else:
        path = base_dir / source.location
        if not inside(path, roots):
            return _failed(category, source, "not read: list files must be inside the config's folder or data_dir"), None
    try:
        last_refresh = path.stat().st_mtime
        parsed = read_list_file(path, source.format)
    except (OSError, EOFError, zlib.error) as error:  # missing, unreadable, corrupt gzip
        reason = getattr(error, "strerror", None) or error  # strerror: without the path again
        return _failed(category, source, f"cannot read {path}: {reason}"), None
    status = _status(category, source.location, source.format, parsed, last_refresh)
    status.label = source.label
    return status, parsed


def _status(category: str, location: str, fmt: str, parsed: ParsedList, last_refresh: float | None) -> SourceStatus:
    """The status of a parsed source. Examples of bad lines are kept only when the file is
    mostly a list: the lines of anything else (a key file, an internal server's answer to a
    list URL) are not for the console, the log or ``check-config`` to repeat."""
    return SourceStatus(
        category=category,
        location=location,
        format=fmt,
        entries=len(parsed.domains),
        exceptions=len(parsed.exceptions),
        bad_lines=parsed.bad_lines,
        bad_examples=parsed.bad_examples if parsed.mostly_a_list else [],
        last_refresh=last_refresh,
        error=None,
        unsupported_lines=parsed.unsupported_lines,
        label=location,
        url_entries=parsed.url_entries,
    )


def _failed(category: str, source: SourceConfig, error: str) -> SourceStatus:
    return SourceStatus(category, source.location, source.format, 0, 0, 0, [], None, error, label=source.label)


def _log_source(status: SourceStatus) -> None:
    if status.error is not None:
        log.warning("category %s: %s: %s", status.category, status.location, status.error)
        return
    details = [f"{status.entries} entries"]
    if status.exceptions:
        details.append(f"{status.exceptions} exceptions")
    if status.unsupported_lines:
        details.append(f"{status.unsupported_lines} unsupported lines skipped")
    if status.url_entries:
        details.append(f"{status.url_entries} page addresses not enforceable by DNS")
    if status.bad_examples:
        line, text = status.bad_examples[0]
        details.append(f"{status.bad_lines} bad lines skipped (first: line {line}: {text!r})")
    elif status.bad_lines:
        details.append(f"{status.bad_lines} bad lines skipped (not shown: the file is mostly not a list)")
    details.append(f"essential names it would block: {len(status.essential_blocked)}")
    log.info("category %s: %s: %s", status.category, status.location, ", ".join(details))
