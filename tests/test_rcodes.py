"""DNS response codes have one home, ``filterdns.wire.rcodes``: its numbers are the RFCs'
(checked against dnspython), and no other module restates one as a bare number."""

from __future__ import annotations

import ast
from pathlib import Path

import dns.rcode

from filterdns.wire import rcodes

PACKAGE = Path(__file__).resolve().parents[1] / "filterdns"


def test_the_codes_are_the_rfcs() -> None:
    names = [name for name in vars(rcodes) if name.startswith("RCODE_")]
    assert len(names) == 7
    for name in names:
        assert getattr(rcodes, name) == dns.rcode.from_text(name.removeprefix("RCODE_")), name


def test_no_module_keeps_its_own_copy() -> None:
    copies = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "rcodes.py" and path.parent.name == "wire":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                copies += [
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {target.id}"
                    for target in node.targets
                    if isinstance(target, ast.Name) and "RCODE_" in target.id
                ]
    assert copies == []
