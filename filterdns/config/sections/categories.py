"""``categories`` (and the ``catalogue`` file they may come from): named lists of domains,
from local files, URLs and inline ``domains``."""

from __future__ import annotations

from pathlib import Path

from filterdns.config import values as v
from filterdns.config.model import CategoryConfig, SourceConfig, inside
from filterdns.config.yamlnodes import ConfigError, Context, Reader, compose_file, default_of


def read_sources(reader: Reader, key: str, base: Path) -> tuple[SourceConfig, ...]:
    """``sources: [PATH | URL | {url | file, format}]``; paths are relative to ``base``."""
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
            fmt = sub.fields(SourceConfig, {"format": v.choice_of(SourceConfig, "format")})["format"]
            sub.finish()
            if (url is None) == (file is None):
                ctx.fail(item, item_path, "a source needs exactly one of 'url' or 'file'")
                continue
            location = url if url is not None else str(base / file)
        elif isinstance(item.value, str):
            location, fmt = item.value, default_of(SourceConfig, "format")
            if not location.startswith(("http://", "https://")):
                location = str(base / location)
        else:
            ctx.fail(item, item_path, "expected a file path, a URL, or {url|file, format}")
            continue
        sources.append(SourceConfig(location, fmt))
    return tuple(sources)


def read_categories(reader: Reader, base: Path) -> dict[str, CategoryConfig]:
    """``categories: {NAME: {description, sources, domains}}``."""
    categories: dict[str, CategoryConfig] = {}
    for name, node in reader.named("categories", "category"):
        sub = Reader(reader.ctx, node, reader.child_path(f"categories.{name}"))
        description = sub.fields(CategoryConfig, {"description": v.text})["description"]
        sources = read_sources(sub, "sources", base)
        domains = sub.get_list("domains", v.text)
        sub.finish()
        categories[name] = CategoryConfig(name, description, sources, domains)
    return categories


def read_catalogue(reader: Reader, base: Path) -> dict[str, CategoryConfig]:
    """Categories from the file named by ``catalogue:`` (its paths relative to that file);
    its problems name the catalogue file."""
    catalogue_name = reader.get("catalogue", v.text, None)
    if catalogue_name is None:
        return {}
    path = (base / catalogue_name).resolve()
    if not inside(path, (base,)):
        # Checked before reading: a YAML error would quote the file's lines.
        reader.ctx.fail(reader.node_of("catalogue"), "catalogue", f"{path} is outside the config's folder ({base})")
        return {}
    try:
        root = compose_file(path)
    except OSError as error:
        reader.ctx.fail(reader.node_of("catalogue"), "catalogue", f"cannot read {path}: {error}")
        return {}
    except ConfigError as error:
        reader.ctx.problems.extend(error.problems)
        return {}
    sub_ctx = Context(str(path))
    catalogue_reader = Reader(sub_ctx, root, "")
    categories = read_categories(catalogue_reader, path.parent)
    catalogue_reader.finish()
    reader.ctx.problems.extend(sub_ctx.problems)
    return categories

