"""One data directory whatever the working directory: the embedded default keeps its store
in a fixed folder, and every command finds it there."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

from filterdns.cli import main
from filterdns.config.loader import default_config, default_data_dir

PASSWORD = "a long enough passphrase 42"


def test_the_default_data_dir_is_fixed_per_user(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_data_dir() == Path("/var/lib/filterdns")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_data_dir() == tmp_path / "state" / "filterdns"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # invalid per the XDG spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".local" / "state" / "filterdns"
    monkeypatch.chdir(tmp_path)
    assert default_config().node.data_dir == tmp_path / "home" / ".local" / "state" / "filterdns"


def test_user_commands_from_two_folders_share_the_default_store(monkeypatch, capsys, tmp_path):
    # As root the default is /var/lib/filterdns: count as an ordinary user to keep it in here.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "ada", "--role", "admin", "--password-stdin"]) == 0
    store = tmp_path / "state" / "filterdns" / "filterdns.db"
    assert f"warning: there is no store at {store} yet" in capsys.readouterr().err
    monkeypatch.chdir(second)
    assert main(["user", "list"]) == 0
    listed = capsys.readouterr()
    assert listed.out.startswith("ada\tadmin")
    assert "warning" not in listed.err
    assert not (first / "data").exists() and not (second / "data").exists()
