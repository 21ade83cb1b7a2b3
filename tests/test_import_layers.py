"""The layers below the console stay below it: the reports and the command line load no
module of the web console (a fresh interpreter each, since this test process has loaded
everything already)."""

from __future__ import annotations

import subprocess
import sys

import pytest

LOADED_WEB = "import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[:2] == ['filterdns', 'web']))"


@pytest.mark.parametrize(
    "module", ["filterdns.reports.digest", "filterdns.reports.digest_job", "filterdns.users_cli", "filterdns.i18n"]
)
def test_module_loads_nothing_of_the_web_console(module: str):
    result = subprocess.run(
        [sys.executable, "-c", LOADED_WEB.format(module=module)], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
