"""scripts/install on a Python like Debian 12's own: ``python3 -m venv`` fails there without
python3-venv (no ensurepip) and a user without root cannot add it. The script must then make
the environment without pip, fetch pip from the package index (here a PEP 503 index served on
loopback, with a wheel of the pip this test runs with), check its SHA-256, and install.
No traffic leaves the machine: PIP_INDEX_URL points at the loopback index."""

from __future__ import annotations

import hashlib
import http.server
import importlib.metadata
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_PYTHON = shutil.which("python3") or sys.executable

# A python3 that behaves like Debian's without python3-venv: "-m venv" without --without-pip
# fails with Debian's message; everything else is the real interpreter.
NO_ENSUREPIP = f"""#!/bin/sh
case " $* " in
  *" -m venv "*)
    case " $* " in
      *" --without-pip "*) ;;
      *) echo "The virtual environment was not created successfully because ensurepip is not" >&2
         echo "available.  On Debian/Ubuntu systems, you need to install the python3-venv package" >&2
         exit 1 ;;
    esac ;;
esac
exec {REAL_PYTHON} "$@"
"""


def wheel_of_installed(distribution: str, folder: Path) -> Path:
    """A wheel made from an installed distribution's files (a wheel is a zip of them)."""
    dist = importlib.metadata.distribution(distribution)
    path = folder / f"{distribution}-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for file in dist.files or ():
            if "__pycache__" in file.parts or file.parts[0].startswith(".."):
                continue
            wheel.write(file.locate(), str(file))
    return path


def tiny_wheel(folder: Path) -> Path:
    path = folder / "schoolhello-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("schoolhello.py", "GREETING = 'hello'\n")
        info = "schoolhello-1.0.dist-info"
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: schoolhello\nVersion: 1.0\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def index(tmp_path: Path):
    """A PEP 503 index on loopback listing a wheel of this test's pip."""
    root = tmp_path / "index"
    (root / "pip").mkdir(parents=True)
    wheel = wheel_of_installed("pip", root / "pip")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (root / "pip" / "index.html").write_text(f'<a href="{wheel.name}#sha256={digest}">{wheel.name}</a>\n')
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(root))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()


def test_install_works_where_python3_has_no_ensurepip(tmp_path: Path, index):
    url, _ = index
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("install", "bootstrap_pip.py"):
        shutil.copy2(REPO / "scripts" / name, repo / "scripts" / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(NO_ENSUREPIP)
    (bin_dir / "python3").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", PIP_INDEX_URL=url)
    done = subprocess.run(
        ["bash", str(repo / "scripts" / "install"), "--no-index", str(tiny_wheel(tmp_path))],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "making .venv without pip" in done.stderr
    python = repo / ".venv" / "bin" / "python"
    check = subprocess.run([str(python), "-c", "import pip, schoolhello; print(schoolhello.GREETING)"],
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert check.stdout.strip() == "hello", check.stderr


def test_a_wheel_that_does_not_match_the_index_is_refused(tmp_path: Path, index):
    url, root = index
    page = root / "pip" / "index.html"
    text = page.read_text()
    digest = text.split("#sha256=")[1][:64]
    page.write_text(text.replace(digest, "0" * 64))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=60)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    done = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), str(REPO / "scripts" / "bootstrap_pip.py")],
        env={**env, "PIP_INDEX_URL": url}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "does not match" in done.stderr
    assert not (tmp_path / "venv" / "bin" / "pip").exists()
