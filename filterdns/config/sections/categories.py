"""``categories`` (and the ``catalogue`` file they may come from): named lists of domains,
from local files, URLs and inline ``domains``."""

from __future__ import annotations

from pathlib import Path

from filterdns.config import values as v
from filterdns.config.model import CategoryConfig, EssentialEntry, SourceConfig, inside
from filterdns.config.sections.essential import read_essential_file
from filterdns.config.yamlnodes import Context, Reader, YamlSyntaxError, compose_file, default_of

LOCKED_CATEGORY = (
    "category '{name}' is locked: it is blocked for every group at all times and nobody, "
    "the administrator included, can allow it"
)


def list_file_problem(location: str, roots: tuple[Path, ...]) -> str | None:
    """Why a local list file cannot be used, or None. A file outside ``roots`` (the config's
    folder and data_dir, symlinks followed) is refused before it is opened: a policy sent
    from the console must not read, or even probe for, the server's other files. A file that
    cannot be opened is a problem too: serving with the category silently empty is worse."""
    path = Path(location)
    if not inside(path, roots):
        return (
            f"{location} is outside the config's folder ({roots[0]}) and data_dir ({roots[1]}); "
            "list files must be inside one of them"
        )
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        return f"cannot read {location}: {error.strerror}"
    return None


def read_sources(reader: Reader, key: str, base: Path, roots: tuple[Path, ...]) -> tuple[SourceConfig, ...]:
    """``sources: [PATH | URL | {url | file, format, name}]``; paths are relative to ``base``
    and must name readable files inside ``roots``."""
    node = reader.node_of(key)
    if node is None:
        return ()
    ctx, path = reader.ctx, reader.child_path(key)
    sources = []
    for i, item in enumerate(node.value if isinstance(node.value, list) else [node]):
        item_path = f"{path}[{i}]"
        if isinstance(item.value, dict):
            sub = Reader(ctx, item, item_path)
            url = sub.get("url", v.text, None)
            file = sub.get("file", v.text, None)
            values = sub.fields(SourceConfig, {"format": v.choice_of(SourceConfig, "format"), "name": v.text})
            fmt, label = values["format"], values["name"]
            sub.finish()
            if (url is None) == (file is None):
                ctx.fail(item, item_path, "a source needs exactly one of 'url' or 'file'")
                continue
            location = url if url is not None else str(base / file)
        elif isinstance(item.value, str):
            location, fmt, label = item.value, default_of(SourceConfig, "format"), ""
            if not location.startswith(("http://", "https://")):
                location = str(base / location)
        else:
            ctx.fail(item, item_path, "expected a file path, a URL, or {url|file, format}")
            continue
        source = SourceConfig(location, fmt, label)
        problem = None if source.is_url or not roots else list_file_problem(location, roots)
        if problem:
            ctx.fail(item, item_path, problem)
            continue
        sources.append(source)
    return tuple(sources)


def read_categories(
    reader: Reader, base: Path, roots: tuple[Path, ...], locked: frozenset[str] = frozenset()
) -> dict[str, CategoryConfig]:
    """``categories: {NAME: {description, sources, domains, locked}}``. A category replacing
    one of ``locked`` (the catalogue's locked categories) stays locked, and ``locked: false``
    on it is refused."""
    categories: dict[str, CategoryConfig] = {}
    for name, node in reader.named("categories", "category"):
        sub = Reader(reader.ctx, node, reader.child_path(f"categories.{name}"))
        values = sub.fields(CategoryConfig, {"description": v.text, "locked": v.boolean})
        sources = read_sources(sub, "sources", base, roots)
        domains = sub.get_list("domains", v.text)
        sub.finish()
        if name in locked:
            if sub.node_of("locked") is not None and not values["locked"]:
                reader.ctx.fail(sub.node_of("locked"), sub.child_path("locked"), LOCKED_CATEGORY.format(name=name))
            values["locked"] = True
        categories[name] = CategoryConfig(name, values["description"], sources, domains, values["locked"])
    return categories


def read_catalogue(
    reader: Reader, base: Path, roots: tuple[Path, ...]
) -> tuple[dict[str, CategoryConfig], tuple[EssentialEntry, ...]]:
    """Categories and essential services from the file named by ``catalogue:`` (its paths
    relative to that file); its problems name the catalogue file."""
    catalogue_name = reader.get("catalogue", v.text, None)
    if catalogue_name is None:
        return {}, ()
    path = (base / catalogue_name).resolve()
    if not inside(path, (base,)):
        # Checked before reading: a YAML error would quote the file's lines.
        reader.ctx.fail(reader.node_of("catalogue"), "catalogue", f"{path} is outside the config's folder ({base})")
        return {}, ()
    try:
        root = compose_file(path)
    except OSError as error:
        reader.ctx.fail(reader.node_of("catalogue"), "catalogue", f"cannot read {path}: {error}")
        return {}, ()
    except YamlSyntaxError as error:
        reader.ctx.absorb(error)
        return {}, ()
    sub_ctx = Context(str(path))
    catalogue_reader = Reader(sub_ctx, root, "")
    categories = read_categories(catalogue_reader, path.parent, roots)
    essential = read_essential_file(catalogue_reader, path.parent)
    catalogue_reader.finish()
    reader.ctx.absorb(sub_ctx)
    return categories, essential

