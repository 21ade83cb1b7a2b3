"""The ``filterdns`` command as an admin runs it: ``python -m filterdns`` in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from filterdns.config.loader import load_config
from tests.support.fake_upstream import FakeUpstream, address_for

REPO = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(r"listening for DNS on 127\.0\.0\.1:(\d+)")


def run(*args: str, cwd: Path = REPO, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "filterdns", *args],
        check=False,
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def broken_config(folder: Path) -> Path:
    path = folder / "config.yaml"
    path.write_text("groups:\n  year7:\n    blok: [social]\n")
    return path


# --------------------------------------------------------------------------- check-config


def test_check_config_on_the_example_prints_category_counts():
    result = run("check-config", "config.yaml")
    assert result.returncode == 0, result.stderr
    for category in ("adult", "gambling", "social", "games", "bypass", "ai-chat"):
        assert re.search(rf"^\s+{category}\s+\d+ domains\s+\S*blocklists/curated/{category}\.txt$", result.stdout, re.MULTILINE), category
    # The catalogue's URL lists are not downloaded yet in a fresh checkout: warnings, not problems.
    assert re.search(r"config\.yaml: OK(, with \d+ warnings?)? — 5 groups, 3 schedules, 17 categories, \d+ listed domains", result.stdout)


def test_check_config_reports_list_health(tmp_path):
    (tmp_path / "essential.yaml").write_text((REPO / "blocklists" / "essential.yaml").read_text())
    (tmp_path / "chat.txt").write_text("teams.microsoft.com\nnasa.gov\ndiscord.com\n")
    (tmp_path / "games.txt").write_text("discord.com\nroblox.com\n")
    (tmp_path / "catalogue.yaml").write_text(
        "essential: essential.yaml\n"
        "categories:\n"
        "  chat: {sources: [{file: chat.txt, name: UT1 chat}, {file: chat.txt, name: copy}]}\n"
        "  games: {sources: [games.txt]}\n"
    )
    (tmp_path / "config.yaml").write_text("catalogue: catalogue.yaml\nessential_extra: [mis.school.example]\n")
    result = run("check-config", str(tmp_path / "config.yaml"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    total = len(set(load_config(tmp_path / "config.yaml").policy.essential_names))
    assert lines.count(f"                 would block 2 of {total} essential names: nasa.gov, teams.microsoft.com") == 2
    assert "  chat           3 entries repeated across its sources" in lines
    assert "  overlap: 1 domains in both chat and games" in lines


def test_check_config_on_a_broken_file_names_file_and_line(tmp_path):
    path = broken_config(tmp_path)
    result = run("check-config", str(path))
    assert result.returncode == 1
    assert f"{path}: 1 problem(s):" in result.stderr
    assert f"{path}:3: groups.year7.blok: unknown key (did you mean 'block'?)" in result.stderr


def test_check_config_on_a_missing_file(tmp_path):
    result = run("check-config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr


# --------------------------------------------------------------------------- explain


def explain(*args: str) -> str:
    result = run("explain", "www.tiktok.com", "-c", "config.yaml", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_explain_tiktok_in_a_year7_lesson_is_blocked():
    out = explain("--group", "year7", "--at", "2026-11-24T09:30")
    assert out.startswith("www.tiktok.com for group year7 at 2026-11-24T09:30")
    assert "listed: tiktok.com in social" in out
    assert "verdict: block (category)" in out
    assert "social is blocked for year7" in out


def test_explain_tiktok_at_year7_lunch_is_allowed():
    out = explain("--group", "year7", "--at", "2026-11-24T12:40")
    assert "open window: lunch" in out
    assert "verdict: allow (default)" in out
    assert "social is allowed for year7 during lunch" in out


def test_explain_where_home_leaves_out_lesson_rules():
    out = explain("--group", "year7", "--where", "home", "--at", "2026-11-24T09:30")
    assert out.startswith("www.tiktok.com for group year7@home at 2026-11-24T09:30")
    assert "verdict: allow" in out and "open window" not in out


def test_explain_picks_the_group_from_the_client_address():
    # config.yaml puts year7 on 10.10.7.0/24.
    out = explain("--client", "10.10.7.25", "--at", "2026-11-24T09:30")
    assert out.startswith("www.tiktok.com for group year7 ")
    assert "verdict: block (category)" in out


@pytest.mark.parametrize("option", [("--client", "10.10.7"), ("--mac", "zz"), ("--at", "tuesday")])
def test_explain_rejects_bad_input_without_a_traceback(option):
    result = run("explain", "www.tiktok.com", "-c", "config.yaml", *option)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- serve


def test_serve_with_a_bad_config_exits_2_and_prints_the_problem(tmp_path):
    path = broken_config(tmp_path)
    result = run("serve", "-c", str(path), "--listen", "127.0.0.1:0", cwd=tmp_path)
    assert result.returncode == 2
    assert "the configuration has problems" in result.stderr
    assert f"{path}:3: groups.year7.blok: unknown key" in result.stderr


def test_serve_with_a_missing_config_exits_2(tmp_path):
    result = run("serve", "-c", str(tmp_path / "nope.yaml"), "--listen", "127.0.0.1:0", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot read the configuration" in result.stderr


def test_serve_on_the_embedded_default_answers_and_stops_on_sigterm(tmp_path):
    with FakeUpstream() as upstream:
        process = subprocess.Popen(
            # --data-dir: as root the default is /var/lib/filterdns, not for a test to fill.
            [sys.executable, "-m", "filterdns", "serve", "--listen", "127.0.0.1:0", "--upstream", f"127.0.0.1:{upstream.port}",
             "--data-dir", str(tmp_path / "state")],
            cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        port: list[int] = []
        listening = threading.Event()

        def read_log() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                lines.append(line)
                match = _LISTENING.search(line)
                if match:
                    port.append(int(match.group(1)))
                    listening.set()

        reader = threading.Thread(target=read_log, daemon=True)
        reader.start()
        try:
            assert listening.wait(20), "".join(lines)
            query = dns.message.make_query("www.example.org", "A")
            response = dns.query.udp(query, "127.0.0.1", port=port[0], timeout=3)
            assert response.rcode() == dns.rcode.NOERROR
            assert [rr.to_text() for rrset in response.answer for rr in rrset] == [address_for("www.example.org")]
            assert [q.qname for q in upstream.queries] == ["www.example.org"]
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            reader.join(timeout=5)
        assert code == 0, "".join(lines)
        assert any(f"data directory: {tmp_path / 'state'}" in line for line in lines)
