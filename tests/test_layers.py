"""The layers keep to their places: the reports and the command line load no module of the
web console, and the console only reads the store (it changes things through ``Control``
or a domain service, which write the audit log with every change)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[1] / "filterdns" / "web"
LOADED_WEB = "import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[:2] == ['filterdns', 'web']))"
# Store methods that only read (the store's other methods write).
READS = ("get_", "list_", "search_", "query_", "top_", "count_", "health", "open_alert_count", "password_token_user")


@pytest.mark.parametrize(
    "module", ["filterdns.reports.digest", "filterdns.reports.digest_job", "filterdns.users_cli", "filterdns.i18n"]
)
def test_module_loads_nothing_of_the_web_console(module: str):
    # A fresh interpreter each: this test process has loaded everything already.
    result = subprocess.run(
        [sys.executable, "-c", LOADED_WEB.format(module=module)], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def store_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, method) of every ``store.method(...)`` and ``<x>.store.method(...)`` call."""
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if (isinstance(owner, ast.Name) and owner.id == "store") or (
                isinstance(owner, ast.Attribute) and owner.attr == "store"
            ):
                calls.append((node.lineno, node.func.attr))
    return calls


def test_the_console_only_reads_the_store():
    writes = [
        f"{path.name}:{line} store.{method}"
        for path in sorted(WEB.glob("*.py"))
        for line, method in store_calls(ast.parse(path.read_text()))
        if not method.startswith(READS)
    ]
    assert writes == []


def test_the_store_call_finder_sees_writes():
    found = store_calls(ast.parse("async def f(c, store):\n    await c.store.create_user()\n    await store.audit()\n"))
    assert found == [(2, "create_user"), (3, "audit")]
