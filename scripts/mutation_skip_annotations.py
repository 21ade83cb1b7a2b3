"""A cosmic-ray filter for ``scripts/mutation``: skip mutants in code that never runs.

Every module of filterdns starts with ``from __future__ import annotations``, so annotations
are never evaluated: ``str | None`` turned into ``str & None`` changes nothing that runs. The
bodies of ``typing.Protocol`` classes only describe an interface (a ``@property`` removed
there changes nothing either). Such mutants can only "survive"; marking them skipped before
the run saves their test runs and keeps the survivor count to mutants that could change
behaviour.

Usage: python scripts/mutation_skip_annotations.py SESSION.sqlite
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

from cosmic_ray.tools.filters.filter_app import FilterApp
from cosmic_ray.work_item import WorkerOutcome, WorkResult

Span = tuple[tuple[int, int], tuple[int, int]]  # (line, column) start and end, lines 1-based


@cache
def annotation_spans(path: Path) -> tuple[Span, ...]:
    """Where the annotations of ``path`` stand (arguments, return types, annotated names),
    and its Protocol classes."""
    spans: list[Span] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.ClassDef) and any(_named(base) == "Protocol" for base in node.bases):
            spans.append(((node.lineno, 0), (node.end_lineno or node.lineno, 1 << 30)))
        if isinstance(node, ast.arg):
            annotations.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in annotations:
            if annotation is not None and annotation.end_lineno is not None:
                start = (annotation.lineno, annotation.col_offset)
                spans.append((start, (annotation.end_lineno, annotation.end_col_offset or 0)))
    return tuple(spans)


def _named(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


class SkipAnnotations(FilterApp):
    def description(self) -> str:
        return __doc__ or ""

    def filter(self, work_db, _args) -> None:
        skipped = WorkResult(output=None, test_outcome=None, diff=None, worker_outcome=WorkerOutcome.SKIPPED)
        for item in work_db.work_items:
            for mutation in item.mutations:
                spans = annotation_spans(Path(mutation.module_path))
                if any(start <= tuple(mutation.start_pos) and tuple(mutation.end_pos) <= end for start, end in spans):
                    work_db.set_result(item.job_id, skipped)
                    break


if __name__ == "__main__":
    sys.exit(SkipAnnotations().main())
