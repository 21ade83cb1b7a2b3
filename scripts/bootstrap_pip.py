"""Put pip into a virtual environment made with ``--without-pip``, using nothing but the
standard library.

Debian's own python3 has the venv module but not ensurepip (that is the python3-venv
package, which needs root to install), so ``python3 -m venv .venv`` fails on a stock Debian 12
and ``python3 -m venv --without-pip .venv`` is as far as a user without root gets. This takes
pip's newest wheel from the package index that pip itself would use (``PIP_INDEX_URL``, or
PyPI), checks its SHA-256 against the index, and lets pip install itself from that wheel.

Usage: .venv/bin/python scripts/bootstrap_pip.py
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

DEFAULT_INDEX = "https://pypi.org/simple/"
# In a PEP 503 simple index page: <a href="...pip-24.0-py3-none-any.whl#sha256=...">
_WHEEL_LINK = re.compile(r'href="([^"]*?/?(pip-([0-9][0-9.]*)-py3-none-any\.whl)#sha256=([0-9a-f]{64}))"')


def newest_wheel(index: str) -> tuple[str, str, str]:
    """(url, file name, sha256) of the newest ``pip-X-py3-none-any.whl`` the index lists."""
    page_url = urllib.parse.urljoin(index if index.endswith("/") else index + "/", "pip/")
    request = urllib.request.Request(page_url, headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=60) as response:
        page = response.read().decode("utf-8", "replace")
    wheels = [
        (tuple(int(part) for part in version.split(".") if part), urllib.parse.urljoin(page_url, href), name, sha)
        for href, name, version, sha in _WHEEL_LINK.findall(page)
    ]
    if not wheels:
        raise SystemExit(f"no pip wheel listed at {page_url}")
    _, url, name, sha = max(wheels)
    return url.split("#", 1)[0], name, sha


def main() -> int:
    index = os.environ.get("PIP_INDEX_URL", DEFAULT_INDEX)
    url, name, expected = newest_wheel(index)
    with tempfile.TemporaryDirectory() as folder:
        wheel = Path(folder) / name
        with urllib.request.urlopen(url, timeout=120) as response:
            wheel.write_bytes(response.read())
        if hashlib.sha256(wheel.read_bytes()).hexdigest() != expected:
            raise SystemExit(f"{name} from {url} does not match the index's SHA-256")
        # A wheel is a zip that Python can run from: pip installs itself from its own wheel.
        command = [sys.executable, str(wheel / "pip"), "install", "--quiet", "--no-index", str(wheel)]
        return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
