"""Hostile policy documents, shared by the loader's and Control's tests."""

from __future__ import annotations


def laughs(levels: int, top: str = "") -> str:
    """A billion-laughs document: each level's list holds the previous one nine times, so
    ``levels`` levels are 5 * 9 ** (levels - 1) names once expanded. ``top`` is added as the
    last line (e.g. ``allow: *l9``)."""
    lines = ["categories:", "  c0: {domains: &l0 [a.example, a.example, a.example, a.example, a.example]}"]
    for level in range(1, levels):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"  c{level}: {{domains: &l{level} [{refs}]}}")
    return "\n".join(lines + ([top] if top else [])) + "\n"
