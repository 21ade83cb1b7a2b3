"""The essential services: the catalogue's ``essential:`` file and the school's
``essential_extra``. Names a school cannot teach without (Teams, Classroom, Windows Update);
the engine keeps them out of every category list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filterdns.config import values as v
from filterdns.config.model import EssentialEntry, inside
from filterdns.config.yamlnodes import Context, Reader, YamlSyntaxError, compose_file
from filterdns.suffixes import is_public_suffix

SCHOOL_SERVICE = "this school's essential list"


def essential_name(value: Any) -> str:
    """A host name that may be kept reachable: never a public suffix (``co.uk``, ``github.io``),
    which would keep every site registered under it out of every category."""
    name = v.domain(value)
    if "." not in name:
        raise ValueError(f"'{value}' is not a host name")
    if is_public_suffix(name):
        raise ValueError(f"'{value}' is a public suffix: it would keep every site registered under it reachable")
    return name


def read_essential_file(reader: Reader, base: Path) -> tuple[EssentialEntry, ...]:
    """The catalogue's ``essential:`` file: ``kinds: {KIND: {title, services: {SERVICE:
    {reason, source, names}}}}``. Every service must say why it is essential and where the
    vendor lists its hosts; its problems name that file."""
    file_name = reader.get("essential", v.text, None)
    if file_name is None:
        return ()
    path = (base / file_name).resolve()
    if not inside(path, (base,)):
        reader.ctx.fail(reader.node_of("essential"), "essential", f"{path} is outside the catalogue's folder ({base})")
        return ()
    try:
        root = compose_file(path)
    except OSError as error:
        reader.ctx.fail(reader.node_of("essential"), "essential", f"cannot read {path}: {error}")
        return ()
    except YamlSyntaxError as error:
        reader.ctx.absorb(error)
        return ()
    ctx = Context(str(path))
    top = Reader(ctx, root, "")
    entries: list[EssentialEntry] = []
    for kind, kind_node in top.named("kinds", "kind"):
        kind_reader = Reader(ctx, kind_node, f"kinds.{kind}")
        kind_reader.get("title", v.text, "")
        for service, node in kind_reader.named("services", "service"):
            sub = Reader(ctx, node, f"kinds.{kind}.services.{service}")
            reason = sub.get("reason", v.text, "")
            source = sub.get("source", v.http_url, "")
            names = sub.get_list("names", essential_name)
            for key, value in (("reason", reason), ("source", source), ("names", names)):
                if not value:
                    ctx.fail(node, sub.path, f"an essential service needs '{key}'")
            sub.finish()
            entries.extend(EssentialEntry(name, service, kind, reason, source) for name in names)
        kind_reader.finish()
    top.finish()
    reader.ctx.absorb(ctx)
    return tuple(entries)


def read_essential_extra(reader: Reader) -> tuple[EssentialEntry, ...]:
    """``essential_extra: [NAME, ...]``: the school's own services (its MIS, its learning
    platform, its website)."""
    return tuple(
        EssentialEntry(name, SCHOOL_SERVICE, "school", "added by the school")
        for name in reader.get_list("essential_extra", essential_name)
    )
