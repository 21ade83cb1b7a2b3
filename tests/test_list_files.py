"""Local list files are read only inside the config's folder and data_dir (symlinks followed),
whether the policy comes from the file or the console; lines a list could not parse are
quoted only when the file is mostly a list, and only to admins."""

from __future__ import annotations

from pathlib import Path

import pytest

from filterdns.config.loader import ConfigError, config_with_policy, load_config
from filterdns.config.model import CategoryConfig, SourceConfig
from filterdns.policy.categories import SourceStatus, build_category_set
from tests.support.web import make_console

SECRET = "DATABASE_PASSWORD=hunter2-very-secret\nAPI_KEY=abc123\n"


@pytest.fixture
def school(tmp_path: Path) -> Path:
    """conf/config.yaml with its data_dir elsewhere, a list in each, and a secret beside both."""
    conf, data, other = tmp_path / "conf", tmp_path / "var" / "data", tmp_path / "x"
    for folder in (conf / "lists", data, other):
        folder.mkdir(parents=True)
    (conf / "config.yaml").write_text(f"data_dir: {data}\nupstream: {{servers: [127.0.0.1]}}\n")
    (conf / "lists" / "games.txt").write_text("games.example\n")
    (data / "extra.txt").write_text("extra.example\n")
    (other / "secret.env").write_text(SECRET)
    (conf / "lists" / "link.txt").symlink_to(other / "secret.env")
    return conf / "config.yaml"


def policy(source: str) -> str:
    return f"categories:\n  games:\n    sources: [{source}]\n"


@pytest.mark.parametrize(
    "source", ["{file: /etc/shadow}", "{file: ../x/secret.env}", "../x/secret.env", "{file: lists/link.txt}",
               "{file: lists/../../x/secret.env}"],
)  # fmt: skip
def test_a_policy_cannot_name_a_file_outside_the_config_folder_or_data_dir(school: Path, source: str):
    with pytest.raises(ConfigError) as refused:
        config_with_policy(load_config(school), policy(source), "policy")
    [problem] = refused.value.problems
    assert problem.startswith("policy:3: categories.games.sources[0]: ") and "list files must be inside" in problem
    assert "hunter2" not in problem


def test_list_files_in_the_config_folder_and_data_dir_are_fine(school: Path):
    data = school.parent.parent / "var" / "data"
    config = config_with_policy(load_config(school), policy(f"lists/games.txt, {data / 'extra.txt'}"))
    assert [Path(s.location).name for s in config.policy.categories[0].sources] == ["games.txt", "extra.txt"]
    with pytest.raises(ConfigError, match="outside the config's folder"):
        config_with_policy(load_config(school), "catalogue: ../x/secret.env\n")


def test_the_config_file_itself_is_held_to_the_same_rule(school: Path):
    school.write_text(school.read_text() + "categories:\n  games: {sources: [{file: ../x/secret.env}]}\n")
    with pytest.raises(ConfigError, match="list files must be inside"):
        load_config(school)


def test_the_reader_checks_again_when_the_lists_are_built(school: Path):
    """A symlink can change after the config was checked: the build refuses to follow it out."""
    conf = school.parent
    built = build_category_set(
        [CategoryConfig("games", sources=(SourceConfig("lists/link.txt"), SourceConfig("lists/games.txt")))],
        conf / "cache", conf, (conf,),
    )  # fmt: skip
    link, games = built.statuses
    assert (link.entries, link.bad_lines, link.bad_examples) == (0, 0, [])
    assert "must be inside the config's folder or data_dir" in (link.error or "")
    assert games.entries == 1 and built.index.match("games.example")


def test_bad_lines_are_quoted_only_from_files_that_are_mostly_lists(tmp_path: Path):
    (tmp_path / "mostly.txt").write_text("a.example\nb.example\nnot a domain\n")
    (tmp_path / "secret.env").write_text(SECRET + "c.example\n")
    built = build_category_set(
        [CategoryConfig("x", sources=(SourceConfig("mostly.txt"), SourceConfig("secret.env")))], tmp_path, tmp_path
    )
    mostly, secret = built.statuses
    assert (mostly.bad_lines, mostly.bad_examples) == (1, [(3, "not a domain")])
    assert (secret.entries, secret.bad_lines, secret.bad_examples) == (1, 2, [])


async def test_only_admins_see_examples_of_bad_lines(tmp_path: Path):
    async with make_console(tmp_path) as console:
        status = SourceStatus("games", "lists/games.txt", "auto", 40, 0, 1, [(7, "not-a-domain here")], None, None)
        console.control.category_statuses = lambda: [status]
        await console.logged_in("vic")
        page = await console.page("/categories")
        assert "lists/games.txt" in page and "not-a-domain here" not in page
        await console.logged_in("ada")
        assert "not-a-domain here" in await console.page("/categories")
