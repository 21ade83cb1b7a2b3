"""No file under filterdns/ grows past 620 lines (#12): a module that long has stopped being
one thing, and is split by what it does before it grows further."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "filterdns"
MAX_LINES = 620


def test_no_module_is_over_the_cap() -> None:
    sizes = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in PACKAGE.rglob("*.py")}
    assert len(sizes) > 50  # the package was found
    too_long = sorted(f"{path.relative_to(PACKAGE.parent)}: {lines}" for path, lines in sizes.items() if lines > MAX_LINES)
    assert too_long == []
