"""Config checking that never says OK while failing (#13 item 5), and policy documents that
cannot take the server down (#11 item 7)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from filterdns.config.loader import MAX_POLICY_BYTES, ConfigError, config_with_policy, load_config, read_config
from tests.support.hostile import laughs

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "filterdns", *args],
        check=False, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def write(folder: Path, text: str) -> Path:
    path = folder / "config.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


MISSING_LIST = """\
upstream: {servers: [127.0.0.1]}
categories:
  games: {sources: [lists/games.txt]}
"""

# Problems found in reading order 3 (timezone, read first), 5 (the list) and 1 (unknown key,
# found last); they must come out by line.
SEVERAL_PROBLEMS = """\
zzzz: 1
upstream: {servers: [127.0.0.1]}
timezone: Mars/Olympus_Mons
categories:
  games: {sources: [lists/games.txt]}
"""


# --------------------------------------------------------------------------- list files


def test_a_missing_local_list_file_is_a_problem_with_file_line_and_key(tmp_path):
    path = write(tmp_path, MISSING_LIST)
    assert problems(path) == [
        f"{path}:3: categories.games.sources[0]: cannot read {tmp_path / 'lists/games.txt'}: No such file or directory"
    ]


def test_an_unreadable_list_file_is_a_problem_too(tmp_path):
    (tmp_path / "lists" / "games.txt").mkdir(parents=True)  # unreadable as a file, even as root
    [problem] = problems(write(tmp_path, MISSING_LIST))
    assert problem.endswith("games.txt: Is a directory")


def test_every_problem_is_reported_in_one_pass_sorted_by_line(tmp_path):
    path = write(tmp_path, SEVERAL_PROBLEMS)
    lines = [int(problem.split(":")[1]) for problem in problems(path)]
    assert lines == [1, 3, 5]


def test_a_policy_naming_a_missing_list_file_is_refused_with_its_line(tmp_path):
    base = load_config(write(tmp_path, "upstream: {servers: [127.0.0.1]}\n"))
    with pytest.raises(ConfigError) as caught:
        config_with_policy(base, "groups: {}\ncategories:\n  games: {sources: [{file: lists/games.txt}]}\n")
    assert caught.value.problems == [
        f"policy:3: categories.games.sources[0]: cannot read {tmp_path / 'lists/games.txt'}: No such file or directory"
    ]


def test_check_config_with_a_missing_list_file_fails_and_never_says_ok(tmp_path):
    path = write(tmp_path, MISSING_LIST)
    result = run("check-config", str(path))
    assert result.returncode == 1
    assert "OK" not in result.stdout + result.stderr
    assert f"{path}:3: categories.games.sources[0]: cannot read" in result.stderr


def test_serve_refuses_a_missing_list_file(tmp_path):
    path = write(tmp_path, MISSING_LIST.replace("upstream:", f"data_dir: {tmp_path / 'data'}\nserver: {{listen: ['127.0.0.1:0']}}\nupstream:"))
    result = run("serve", "-c", str(path), timeout=30)
    assert result.returncode != 0
    assert "categories.games.sources[0]: cannot read" in result.stderr
    assert not (tmp_path / "data" / "filterdns.db").exists()


# --------------------------------------------------------------------------- warnings


def test_a_list_not_downloaded_yet_is_a_warning_and_the_summary_counts_it(tmp_path):
    path = write(
        tmp_path,
        f"data_dir: {tmp_path / 'data'}\nupstream: {{servers: [127.0.0.1]}}\n"
        "categories:\n  games: {sources: ['http://127.0.0.1:9/games.txt']}\n",
    )
    result = run("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert "warning: categories.games: http://127.0.0.1:9/games.txt: not downloaded yet" in result.stdout
    assert f"{path}: OK, with 1 warning — " in result.stdout


def test_a_network_with_host_bits_set_is_a_warning_naming_the_network_it_means(tmp_path):
    path = write(
        tmp_path,
        "upstream: {servers: [127.0.0.1]}\ngroups:\n  year8:\n    networks: [10.10.8.0/24, 10.10.8.5/24, 10.10.9.7]\n",
    )
    config, warnings = read_config(path)
    assert warnings == [f"{path}:4: groups.year8.networks[1]: '10.10.8.5/24' has host bits set; it means the network 10.10.8.0/24"]
    assert [str(n) for n in config.policy.groups[0].networks] == ["10.10.8.0/24", "10.10.8.0/24", "10.10.9.7/32"]
    result = run("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert f"warning: {warnings[0]}" in result.stdout
    assert f"{path}: OK, with 1 warning — " in result.stdout


# --------------------------------------------------------------------------- YAML syntax


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("groups:\n  year7:\n    block: [social, games\n  year8:\n    description: x\n", 3),
        ("groups:\n  year7:\n    description: \"Year 7\n  year8: {}\n  year9: {}\n", 3),
    ],
)
def test_a_yaml_syntax_error_points_at_the_line_where_the_problem_starts(tmp_path, text, start):
    path = write(tmp_path, text)
    [problem] = problems(path)
    assert problem.startswith(f"{path}:{start}: not valid YAML: ")


# --------------------------------------------------------------------------- hostile policies


def test_a_policy_with_nested_aliases_is_refused_fast_with_a_plain_message(tmp_path):
    base = load_config(write(tmp_path, "upstream: {servers: [127.0.0.1]}\n"))
    document = laughs(10)  # 9**9 * 5 names once expanded
    assert len(document) < 1000
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        config_with_policy(base, document)
    assert time.monotonic() - started < 1.0
    assert caught.value.problems == [
        "policy:3: YAML aliases (*l0) are not accepted in a policy; write the value out in full"
    ]


def test_an_oversized_policy_is_refused_before_it_is_parsed(tmp_path):
    base = load_config(write(tmp_path, "upstream: {servers: [127.0.0.1]}\n"))
    domains = "".join(f"  - d{i}.example\n" for i in range(MAX_POLICY_BYTES // 15))
    document = "allow:\n" + domains
    assert len(document) > MAX_POLICY_BYTES
    with pytest.raises(ConfigError) as caught:
        config_with_policy(base, document)
    [problem] = caught.value.problems
    assert problem.startswith("policy: the policy is ") and f"the most accepted is {MAX_POLICY_BYTES:,}" in problem
    fits = "allow:\n" + "".join(f"  - d{i}.example\n" for i in range(1000))
    assert len(config_with_policy(base, fits).policy.allow_domains) == 1000


@pytest.mark.parametrize("depth", [600, 100_000])
def test_a_policy_nested_hundreds_deep_is_a_plain_problem(tmp_path, depth):
    base = load_config(write(tmp_path, "upstream: {servers: [127.0.0.1]}\n"))
    with pytest.raises(ConfigError) as caught:
        config_with_policy(base, "allow: " + "[" * depth + "]" * depth + "\n")
    [problem] = caught.value.problems
    assert problem.startswith("policy:") and ("nested hundreds deep" in problem or "maximum nesting depth" in problem)


def test_anchors_in_the_config_file_itself_still_work(tmp_path):
    """The node's own file is the admin's: shared term dates (``&term`` / ``*term``) stay."""
    path = write(
        tmp_path,
        "upstream: {servers: [127.0.0.1]}\nallow: &shared [bbc.co.uk]\ngroups:\n  year7: {allow: *shared}\n",
    )
    assert load_config(path).policy.groups[0].allow_domains == ("bbc.co.uk",)
