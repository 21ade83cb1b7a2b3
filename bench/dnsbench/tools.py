"""Making sure the external programs are there: installed with apt-get when run as root on
Debian, otherwise reported so the benchmark can skip cleanly.

Installing Debian's unbound and nsd packages would normally also start them as system
services on port 53; the benchmark runs its own instances, so service start-up is suppressed
during the install with the standard ``policy-rc.d`` mechanism (only if none exists already).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

# program (or, for a path, the file) -> Debian package. Unbound's python module (the
# pfBlockerNG-style peer) needs Debian's glue module, which only python3-unbound ships.
UNBOUND_PYTHON_GLUE = "/usr/lib/python3/dist-packages/unboundmodule.py"
REQUIRED = {"dnsperf": "dnsperf", "unbound": "unbound", "dnsmasq": "dnsmasq-base", "nsd": "nsd",
            UNBOUND_PYTHON_GLUE: "python3-unbound"}
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
APT_TIMEOUT_S = 900


class MissingTools(RuntimeError):
    pass


def ensure_tools(install: bool, say=print, programs: Iterable[str] = tuple(REQUIRED)) -> None:
    """Raise ``MissingTools`` (with what to do) when one of ``programs`` (default: all of
    ``REQUIRED``) is missing and cannot be installed."""
    _extend_path()
    missing = [program for program in programs if not _present(program)]
    if not missing:
        return
    packages = sorted({REQUIRED[program] for program in missing})
    hint = f"apt-get install {' '.join(packages)}"
    if not install:
        raise MissingTools(f"missing {', '.join(missing)} (install them: {hint}); --no-install was given")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise MissingTools(f"missing {', '.join(missing)}; run as root on Debian to install them, or: {hint}")
    say(f"installing {' '.join(packages)} with apt-get ...")
    if not _apt_install(packages):
        _apt(["update"])
        if not _apt_install(packages):
            raise MissingTools(f"apt-get could not install {' '.join(packages)}")
    still = [program for program in missing if not _present(program)]
    if still:
        raise MissingTools(f"still missing after install: {', '.join(still)}")


def _extend_path() -> None:
    """unbound, nsd and dnsmasq live in sbin, which a non-login PATH may lack."""
    parts = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join(parts + [d for d in SBIN_DIRS if d not in parts])


def _present(program: str) -> bool:
    return Path(program).exists() if program.startswith("/") else shutil.which(program) is not None


def _apt_install(packages: list[str]) -> bool:
    created = False
    if not POLICY_RC_D.exists():
        POLICY_RC_D.write_text("#!/bin/sh\n# written by filterdns bench/ during its install; removed after\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
        created = True
    try:
        return _apt(["install", "-y", "--no-install-recommends", *packages])
    finally:
        if created:
            POLICY_RC_D.unlink(missing_ok=True)


def _apt(args: list[str]) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        done = subprocess.run(["apt-get", "-q", *args], env=env, capture_output=True, text=True,
                              timeout=APT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def versions() -> dict[str, str]:
    """Versions of the reference programs, for the results file."""
    found = {}
    for program, args in (("unbound", ["-V"]), ("dnsmasq", ["--version"]), ("nsd", ["-v"])):
        try:
            done = subprocess.run([program, *args], capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        text = (done.stdout + done.stderr).strip().splitlines()
        found[program] = text[0] if text else "unknown"
    return found
