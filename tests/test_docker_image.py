"""The Docker image's install is complete: install exactly what the Dockerfile copies before
its ``pip install /src``, into a fresh virtual environment and not editable, then run the
Dockerfile's own command from that install (addresses moved to loopback) and check that it
answers DNS and serves the console with its static files.

No Docker daemon is needed (none can be had in CI: the base image would come from a registry
this workplace cannot reach). The build context honours .dockerignore as Docker does for the
patterns it uses. The fresh environment gets the project's dependencies and the build backend
from this test run's own environment through a .pth file, so nothing is downloaded; its own
site-packages comes first on sys.path, so ``filterdns`` and ``admin_ui`` are the copies
installed from /src.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.support.fake_upstream import FakeUpstream, address_for
from tests.support.server import REPO, FilterDnsProcess, base_config

DOCKERFILE = REPO / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``relative`` (or a folder above it) out of the context."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern) or (
                bare != pattern and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], bare)
            ):
                return True
    return False


def copy_install_sources(dest_root: Path) -> Path:
    """Lay out what the Dockerfile's COPY lines put under /src, as ``dest_root``/src."""
    steps = instructions(DOCKERFILE.read_text())
    install = next(i for i, (op, args) in enumerate(steps) if op == "RUN" and "pip install /src" in args)
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = 0
    for op, args in steps[:install]:
        if op != "COPY":
            continue
        *sources, target = shlex.split(args)
        assert target.startswith("/src"), f"COPY before the install puts {sources} outside /src"
        for source in sources:
            origin = REPO / source
            assert not ignored(source, patterns), f".dockerignore leaves {source} out of the context"
            into = dest_root / target.lstrip("/")
            if origin.is_dir():
                for path in origin.rglob("*"):
                    relative = path.relative_to(REPO).as_posix()
                    if path.is_file() and not ignored(relative, patterns):
                        out = into / path.relative_to(origin)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, out)
            else:
                out = into / origin.name if target.endswith("/") else into
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, out)
            copied += 1
    assert copied >= 3
    return dest_root / "src"


def docker_options(data_dir: Path) -> tuple[str, ...]:
    """The options of the Dockerfile's ``filterdns serve -c /etc/filterdns/config.yaml ...``
    command after its config file, addresses moved to loopback port 0, data kept here."""
    cmd = json.loads(next(args for op, args in instructions(DOCKERFILE.read_text()) if op == "CMD"))
    assert cmd[:4] == ["filterdns", "serve", "-c", "/etc/filterdns/config.yaml"], cmd
    options = cmd[4:]
    assert "--listen" in options and "--web-listen" in options and "--data-dir" in options, options
    for i, value in enumerate(options[:-1]):
        if value == "--data-dir":
            options[i + 1] = str(data_dir)
        elif options[i + 1].startswith("0.0.0.0:"):
            options[i + 1] = "127.0.0.1:0"
    return tuple(options)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the Dockerfile's /src pip-installed (not editable)."""
    root = tmp_path_factory.mktemp("image")
    src = copy_install_sources(root)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(
        subprocess.run(
            [venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )
    (site / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "-q", "--no-deps",
         "--no-index", "--no-build-isolation", "--disable-pip-version-check", str(src)],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = subprocess.run(
        [venv / "bin/python", "-c", "import admin_ui, filterdns; print(filterdns.__file__, *admin_ui.__path__)"],
        cwd=root, capture_output=True, text=True, check=False,
    )
    assert found.returncode == 0, f"the install lacks a package:\n{found.stderr}"
    assert all(Path(path).is_relative_to(site) for path in found.stdout.split()), found.stdout
    return venv


def test_the_dockerfile_install_starts_answers_and_serves_the_console(installed: Path, tmp_path: Path) -> None:
    with FakeUpstream() as upstream:
        config = base_config(upstream.port, web={"listen": "127.0.0.1:0"})
        server = FilterDnsProcess(
            config, tmp_path, extra_args=docker_options(tmp_path / "data"), command=(str(installed / "bin/filterdns"),)
        )
        with server:
            query = dns.message.make_query("school.example", "A")
            reply = dns.query.udp(query, "127.0.0.1", port=server.port, timeout=5)
            assert [rr.address for rrset in reply.answer for rr in rrset] == [address_for("school.example")]
            with urllib.request.urlopen(f"{server.console_url}/login", timeout=10) as page:
                assert page.status == 200 and "<form" in page.read().decode()
            with urllib.request.urlopen(f"{server.console_url}/static/console.css", timeout=10) as style:
                assert style.status == 200 and style.read()


def test_the_readme_runs_the_image_as_the_dockerfile_says() -> None:
    """One way to run the image, said twice: the README's ``docker run`` uses host networking
    as the Dockerfile's header does, and its IPv6 command is the image's own with ``[::]:53``
    added, so neither drifts from the other."""
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    header = " ".join(line.lstrip("# ") for line in DOCKERFILE.read_text().splitlines() if line.startswith("#"))
    cmd = json.loads(next(args for op, args in instructions(DOCKERFILE.read_text()) if op == "CMD"))
    assert "docker run -d --name filterdns --network host" in readme
    assert "docker run -d --name filterdns --network host" in header
    listen = cmd.index("--listen")
    with_ipv6 = [*cmd[: listen + 2], "--listen", "[::]:53", *cmd[listen + 2 :]]
    assert f"filterdns {' '.join(with_ipv6)}" in readme
    assert "plain HTTP" in readme and "plain HTTP" in header
