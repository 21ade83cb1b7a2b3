"""The config loader: typed values from YAML, and mistakes reported as ``file:line: key: why``,
all of them at once."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from filterdns.config import loader
from filterdns.config.loader import ConfigError, default_config, load_config, system_resolvers
from filterdns.config.values import (
    parse_date_range,
    parse_duration,
    parse_endpoint,
    parse_mac,
    parse_weekdays,
    parse_window,
)
from filterdns.config.model import (
    Endpoint,
    ScheduleException,
    SourceConfig,
    UpstreamServerConfig,
)

CATEGORIES = """
categories:
  social: {domains: [tiktok.com]}
  games: {domains: [roblox.com]}
"""


def write(folder: Path, *parts: str, name: str = "config.yaml") -> Path:
    """Write the dedented ``parts`` one after the other to ``folder/name``."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(textwrap.dedent(part).lstrip("\n") for part in parts))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def line_of(path: Path, marker: str) -> int:
    """1-based number of the only line of ``path`` containing ``marker``."""
    (number,) = [i for i, line in enumerate(path.read_text().splitlines(), 1) if marker in line]
    return number


def only_problem(path: Path) -> str:
    (problem,) = problems(path)
    return problem


# --------------------------------------------------------------------------- located errors


def test_unknown_key_with_did_you_mean(tmp_path):
    path = write(tmp_path, CATEGORIES, "groups:\n  year7:\n    blok: [social]\n")
    assert only_problem(path) == f"{path}:{line_of(path, 'blok')}: groups.year7.blok: unknown key (did you mean 'block'?)"


def test_unknown_top_level_key_without_a_close_match(tmp_path):
    path = write(tmp_path, "zzzz: 1\n")
    assert only_problem(path) == f"{path}:1: zzzz: unknown key"


@pytest.mark.parametrize(
    ("text", "marker", "key", "message"),
    [
        ("server:\n  tcp_max_connections: many\n", "many", "server.tcp_max_connections", "'many' is not a whole number"),
        ("server:\n  uvloop: 'yes'\n", "uvloop", "server.uvloop", "'yes' is not true or false"),
        ("server:\n  tcp_idle_timeout: soon\n", "soon", "server.tcp_idle_timeout", "'soon' is not a duration"),
        ("server:\n  listen: ['127.0.0.1:99999']\n", "99999", "server.listen[0]", "port 99999 is out of range"),
        ("server:\n  listen: ['127.0.0.1']\n", "listen", "server.listen[0]", "needs a port"),
        ("log: {format: xml}\n", "xml", "log.format", "'xml' is not one of: text, json"),
        ("blocking:\n  mode: nope\n", "nope", "blocking.mode", "'nope' is not one of"),
        ("blocking:\n  page_ipv4: 10.0.0.300\n", "300", "blocking.page_ipv4", ""),
        ("groups: [a, b]\n", "groups", "groups", "expected a mapping"),
        ("trusted_forwarders: [10.0.0.0/33]\n", "33", "trusted_forwarders[0]", "not an IP address or CIDR network"),
        ("timezone: Mars/Olympus\n", "Mars", "timezone", "'Mars/Olympus' is not an IANA time zone"),
        ("metrics: {listen: 127.0.0.1}\n", "metrics", "metrics.listen", "needs a port"),
        ("reports: {language: de}\n", "de", "reports.language", "'de' is not a language filterdns speaks: en, pt-BR"),
    ],
)
def test_wrong_types_and_values_are_located(tmp_path, text, marker, key, message):
    path = write(tmp_path, text)
    problem = only_problem(path)
    assert problem.startswith(f"{path}:{line_of(path, marker)}: {key}: ")
    assert message in problem


def test_the_schools_language_is_read_as_its_tag(tmp_path):
    assert load_config(write(tmp_path, "reports: {language: PT-br}\n")).node.reports.language == "pt-BR"
    assert load_config(write(tmp_path, "reports: {mask_below: 3}\n")).node.reports.language == "en"


def test_the_safeguarding_contact(tmp_path):
    text = "reports:\n  safeguarding_contact: {name: Ana Souza, email: orientacao@escola.example, phone: '188'}\n"
    contact = load_config(write(tmp_path, text)).node.reports.safeguarding_contact
    assert (contact.name, contact.role, contact.email, contact.phone) == ("Ana Souza", "", "orientacao@escola.example", "188")
    bad = write(tmp_path, "reports:\n  safeguarding_contact: {email: nobody}\n")
    assert "reports.safeguarding_contact.email: 'nobody' is not a mail address" in only_problem(bad)


def test_unknown_category_in_a_group(tmp_path):
    path = write(tmp_path, CATEGORIES, "groups:\n  year7:\n    block: [socail]\n")
    assert only_problem(path) == (
        f"{path}:{line_of(path, 'socail')}: groups.year7.block[0]: unknown category 'socail' (did you mean 'social'?)"
    )


def test_unknown_schedule_in_a_rule(tmp_path):
    path = write(
        tmp_path,
        CATEGORIES,
        """
        schedules:
          lessons: {weekly: {mon-fri: ["09:00-12:00"]}}
        groups:
          year7:
            rules:
              - {during: lunchtime, block: [games]}
        """,
    )
    assert only_problem(path) == (
        f"{path}:{line_of(path, 'lunchtime')}: groups.year7.rules[0].during: unknown schedule 'lunchtime' (schedules: lessons)"
    )


def test_rule_without_categories(tmp_path):
    path = write(tmp_path, "schedules:\n  lessons: {weekly: {mon: ['09:00-10:00']}}\ngroups:\n  g:\n    rules:\n      - {during: lessons}\n")
    assert only_problem(path) == f"{path}:{line_of(path, 'during')}: groups.g.rules[0]: a rule needs categories to 'block' or 'allow'"


def test_bad_cidr_and_bad_mac(tmp_path):
    path = write(tmp_path, "groups:\n  g:\n    networks: [10.10.7.0/33]\n    macs: ['aa:bb:cc:dd:ee']\n")
    assert sorted(problems(path)) == [
        f"{path}:3: groups.g.networks[0]: '10.10.7.0/33' is not an IP address or CIDR network",
        f"{path}:4: groups.g.macs[0]: 'aa:bb:cc:dd:ee' is not a MAC address such as aa:bb:cc:dd:ee:ff",
    ]


@pytest.mark.parametrize("window", ["25:00-26:00", "08:60-09:00", "9-10", "10:00-10:00", "24:00-01:00"])
def test_bad_window(tmp_path, window):
    path = write(tmp_path, f"schedules:\n  s:\n    weekly:\n      mon: ['{window}']\n")
    problem = only_problem(path)
    assert problem.startswith(f"{path}:4: schedules.s.weekly.mon[0]: '{window}'")


def test_bad_day_name(tmp_path):
    path = write(tmp_path, "schedules:\n  s:\n    weekly:\n      funday: ['09:00-10:00']\n")
    assert only_problem(path).startswith(f"{path}:4: schedules.s.weekly.funday: 'funday' is not a day")


def test_bad_date_is_located(tmp_path):
    path = write(tmp_path, "schedules:\n  s:\n    exceptions:\n      - {name: Xmas, dates: '2026-13-01'}\n")
    assert f"{path}:4: schedules.s.exceptions[0].dates: '2026-13-01' is not a date" in problems(path)[0]


@pytest.mark.parametrize("dates", ["2026-12-19..2026-12-01", "2026-13-01"])
def test_bad_date_range_is_one_problem(tmp_path, dates):
    path = write(tmp_path, f"schedules:\n  s:\n    exceptions:\n      - {{name: Xmas, dates: '{dates}'}}\n")
    assert len(problems(path)) == 1


def test_exception_without_dates(tmp_path):
    path = write(tmp_path, "schedules:\n  s:\n    exceptions:\n      - {name: Xmas}\n")
    assert only_problem(path) == f"{path}:4: schedules.s.exceptions[0]: an exception needs 'dates' (2026-12-19 or 2026-12-19..2027-01-04)"


def test_bad_time_zone_in_a_schedule(tmp_path):
    path = write(tmp_path, "schedules:\n  s:\n    timezone: Europe/Londn\n")
    assert only_problem(path) == f"{path}:3: schedules.s.timezone: 'Europe/Londn' is not an IANA time zone such as Europe/London"


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "server:\n  listen: ['127.0.0.1:53'\ngroups:\n  a: {}\n")
    (problem,) = problems(path)
    # The unclosed bracket opens on line 2; the parser only notices on line 3.
    assert problem.startswith(f"{path}:2: not valid YAML") and problem.endswith("(line 3)")


def test_duplicated_mac_across_groups(tmp_path):
    path = write(tmp_path, "groups:\n  staff:\n    macs: ['AA-BB-CC-DD-EE-FF']\n  year8:\n    macs: ['aa:bb:cc:dd:ee:ff']\n")
    problem = only_problem(path)
    assert "groups.year8.macs: aa:bb:cc:dd:ee:ff is also in group 'staff'" in problem
    assert problem.startswith(str(path))


def test_duplicated_mac_names_its_line(tmp_path):
    path = write(tmp_path, "groups:\n  staff:\n    macs: ['AA-BB-CC-DD-EE-FF']\n  year8:\n    macs: ['aa:bb:cc:dd:ee:ff']\n")
    assert only_problem(path).startswith(f"{path}:5: groups.year8.macs")


def test_blockpage_without_an_address(tmp_path):
    path = write(tmp_path, "blocking:\n  mode: blockpage\n  ttl: 60\n")
    assert only_problem(path) == f"{path}:2: blocking.page_ipv4: block mode 'blockpage' needs the block page's address"


def test_blockpage_with_only_an_ipv6_address_is_fine(tmp_path):
    config = load_config(write(tmp_path, "blocking: {mode: blockpage, page_ipv6: 'fd00::5'}\n"))
    assert config.policy.blocking.page_ipv6 == "fd00::5" and config.policy.blocking.page_ipv4 is None


def test_blockpage_needed_by_a_group_names_a_line(tmp_path):
    path = write(tmp_path, "groups:\n  year7:\n    block_mode: blockpage\n")
    assert only_problem(path).startswith(f"{path}:3: ")


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        CATEGORIES,
        """
        timezone: Mars/Olympus
        server:
          listen: ["127.0.0.1:99999"]
          tcp_idle_timeout: soon
        schedules:
          lessons:
            weekly:
              mon-fri: ["08:45-10:30", "25:00-26:00"]
              funday: ["09:00-10:00"]
        groups:
          year7:
            networks: [10.10.7.0/33]
            macs: ["aa:bb:cc:dd:ee"]
            blok: [social]
            block: [socail]
            rules:
              - {during: lunch, block: [social]}
            bypass_protection: "yes"
        blocking: {mode: blockpage}
        """,
    )
    found = problems(path)
    expected_keys = [
        "timezone",
        "server.listen[0]",
        "server.tcp_idle_timeout",
        "schedules.lessons.weekly.mon-fri[1]",
        "schedules.lessons.weekly.funday",
        "groups.year7.networks[0]",
        "groups.year7.macs[0]",
        "groups.year7.blok",
        "groups.year7.block[0]",
        "groups.year7.rules[0].during",
        "groups.year7.bypass_protection",
        "blocking.page_ipv4",
    ]
    assert len(found) == len(expected_keys)
    for key in expected_keys:
        assert any(f": {key}: " in problem for problem in found), key


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), (1.5, 1.5), ("500ms", 0.5), ("10s", 10.0), ("5m", 300.0), ("24h", 86400.0), ("7d", 604800.0), (" 2 s ", 2.0), ("90", 90.0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10 minutes", "-5s", -1, True, "5w", ""])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("127.0.0.1:5353", None, Endpoint("127.0.0.1", 5353)),
        ("[::1]:53", None, Endpoint("::1", 53)),
        ("localhost:53", None, Endpoint("localhost", 53)),
        ("9.9.9.9", 53, Endpoint("9.9.9.9", 53)),
        ("[2620:fe::fe]", 53, Endpoint("2620:fe::fe", 53)),
        ("2620:fe::fe", 53, Endpoint("2620:fe::fe", 53)),
        ("127.0.0.1:0", None, Endpoint("127.0.0.1", 0)),
    ],
)
def test_endpoints(text, default, expected):
    assert parse_endpoint(text, default) == expected


def test_endpoint_text_round_trips():
    assert str(parse_endpoint("[::1]:5353")) == "[::1]:5353"
    assert str(parse_endpoint("127.0.0.1:53")) == "127.0.0.1:53"


@pytest.mark.parametrize("text", ["127.0.0.1", "[::1]", ":53", "host:http", "host:70000"])
def test_bad_endpoints(text):
    with pytest.raises(ValueError):
        parse_endpoint(text)


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon", ("mon",)),
        ("mon-fri", ("mon", "tue", "wed", "thu", "fri")),
        ("sat,sun", ("sat", "sun")),
        ("Mon, Wed, Fri", ("mon", "wed", "fri")),
        ("fri-mon", ("fri", "sat", "sun", "mon")),
        ("daily", ("mon", "tue", "wed", "thu", "fri", "sat", "sun")),
    ],
)
def test_weekdays(text, days):
    assert parse_weekdays(text) == days


def test_windows_and_dates():
    assert parse_window("8:45-10:15") == ("08:45", "10:15")
    assert parse_window("22:00 - 24:00") == ("22:00", "24:00")
    assert parse_window("22:00-02:00") == ("22:00", "02:00")  # crosses midnight
    assert parse_date_range("2026-12-19..2027-01-04") == ("2026-12-19", "2027-01-04")
    assert parse_date_range("2027-06-18") == ("2027-06-18", "2027-06-18")


@pytest.mark.parametrize("text", ["aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff", "AABBCCDDEEFF"])
def test_macs_are_normalised(text):
    assert parse_mac(text) == "aa:bb:cc:dd:ee:ff"


def test_a_full_config_loads_into_typed_values(tmp_path):
    for name in ("lists/social.txt", "lists/more.txt"):
        write(tmp_path, "listed.example\n", name=name)
    path = write(
        tmp_path,
        """
        server:
          listen: ["127.0.0.1:5353", "[::1]:5353"]
          tcp_idle_timeout: 500ms
        upstream:
          timeout: 1.5s
          servers:
            - 9.9.9.9
            - "[2620:fe::fe]"
            - {address: "1.1.1.1:853", protocol: tcp, name: cloudflare}
        cache: {max_ttl: 1d, negative_max_ttl: 1h}
        lists: {refresh_interval: 24h}
        log: {query_log: logs/queries.jsonl}
        data_dir: ./state
        timezone: Europe/London
        categories:
          social:
            sources: [lists/social.txt, {file: lists/more.txt, format: hosts}, "https://example.org/l.txt"]
            domains: [tiktok.com]
        schedules:
          evenings:
            timezone: UTC
            weekly:
              fri-mon: ["18:00-20:00"]
              sat,sun: ["10:00-12:00"]
            exceptions:
              - {name: Sports day, dates: "2027-06-18", windows: ["08:45-10:30"]}
              - {dates: "2026-12-19..2027-01-04"}
          lessons:
            weekly: {mon-fri: ["09:00-15:00"]}
        groups:
          year7:
            networks: [10.10.7.0/24, "fd00:7::/64"]
            block: [social]
            rules: [{during: lessons, allow: [social]}]
            allow: ["*.BBC.co.uk."]
            safe_search: {search: true, youtube: off}
            block_mode: nxdomain
        """,
    )
    config = load_config(path)
    assert config.node.server.listen == (Endpoint("127.0.0.1", 5353), Endpoint("::1", 5353))
    assert config.node.server.tcp_idle_timeout == 0.5
    assert config.node.upstream.timeout == 1.5
    assert config.node.upstream.servers == (
        UpstreamServerConfig(Endpoint("9.9.9.9", 53)),
        UpstreamServerConfig(Endpoint("2620:fe::fe", 53)),
        UpstreamServerConfig(Endpoint("1.1.1.1", 853), "tcp", "cloudflare"),
    )
    assert (config.node.cache.max_ttl, config.node.cache.negative_max_ttl) == (86400, 3600)
    assert config.node.lists.refresh_interval == 86400.0
    assert config.node.log.query_log == tmp_path / "logs/queries.jsonl"
    assert config.node.data_dir == tmp_path / "state"
    assert config.node.source == path
    (social,) = config.policy.categories
    assert social.sources == (
        SourceConfig(str(tmp_path / "lists/social.txt")),
        SourceConfig(str(tmp_path / "lists/more.txt"), "hosts"),
        SourceConfig("https://example.org/l.txt"),
    )
    evenings, lessons = config.policy.schedules
    assert evenings.timezone == "UTC" and lessons.timezone == "Europe/London"
    assert evenings.weekly == {
        "fri": (("18:00", "20:00"),),
        "sat": (("18:00", "20:00"), ("10:00", "12:00")),
        "sun": (("18:00", "20:00"), ("10:00", "12:00")),
        "mon": (("18:00", "20:00"),),
    }
    assert evenings.exceptions == (
        ScheduleException("Sports day", "2027-06-18", "2027-06-18", (("08:45", "10:30"),)),
        ScheduleException("2026-12-19", "2026-12-19", "2027-01-04", ()),
    )
    year7 = next(g for g in config.policy.groups if g.name == "year7")
    assert year7.networks == (ipaddress.ip_network("10.10.7.0/24"), ipaddress.ip_network("fd00:7::/64"))
    assert year7.allow_domains == ("bbc.co.uk",)
    assert year7.safe_search.search is True and year7.safe_search.youtube == "off"
    assert year7.block_mode == "nxdomain" and year7.bypass_protection is True
    assert year7.rules[0].schedule == "lessons" and year7.rules[0].allow == ("social",)


@pytest.mark.parametrize(("value", "mode"), [("off", "off"), ("false", "off"), ("strict", "strict"), ("moderate", "moderate")])
def test_youtube_modes_including_yaml_false(tmp_path, value, mode):
    config = load_config(write(tmp_path, f"groups:\n  g:\n    safe_search: {{youtube: {value}}}\n"))
    assert config.policy.groups[0].safe_search.youtube == mode


def test_youtube_yes_is_an_error(tmp_path):
    path = write(tmp_path, "groups:\n  g:\n    safe_search: {youtube: yes}\n")
    assert only_problem(path).startswith(f"{path}:3: groups.g.safe_search.youtube: ")


def test_default_group_is_created_when_missing(tmp_path):
    config = load_config(write(tmp_path, "default_group: guests\ngroups:\n  staff: {networks: [10.0.0.0/24]}\n"))
    assert [g.name for g in config.policy.groups] == ["staff", "guests"]
    assert config.policy.default_group == "guests"
    assert config.policy.groups[1].block == () and config.policy.groups[1].bypass_protection is True


def test_an_empty_file_gives_the_default_group(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert [g.name for g in config.policy.groups] == ["default"] and config.policy.default_group == "default"


def test_defined_default_group_is_not_duplicated(tmp_path):
    config = load_config(write(tmp_path, "default_group: guests\ngroups:\n  guests: {description: Visitors}\n"))
    assert [(g.name, g.description) for g in config.policy.groups] == [("guests", "Visitors")]


# --------------------------------------------------------------------------- catalogue


def test_catalogue_paths_are_relative_to_the_catalogue(tmp_path):
    for name in ("blocklists/curated/adult.txt", "blocklists/extra/adult.txt", "blocklists/curated/social.txt", "mine.txt"):
        write(tmp_path, "listed.example\n", name=name)
    write(
        tmp_path,
        """
        categories:
          adult:
            description: Adult sites
            sources: [curated/adult.txt, {file: extra/adult.txt, format: domains}, "https://example.org/a.txt"]
          social:
            sources: [curated/social.txt]
        """,
        name="blocklists/catalogue.yaml",
    )
    config = load_config(
        write(tmp_path, "catalogue: blocklists/catalogue.yaml\ncategories:\n  social: {domains: [tiktok.com]}\n  own: {sources: [mine.txt]}\n")
    )
    by_name = {c.name: c for c in config.policy.categories}
    assert [c.name for c in config.policy.categories] == ["adult", "social", "own"]
    assert by_name["adult"].description == "Adult sites"
    assert [s.location for s in by_name["adult"].sources] == [
        str(tmp_path / "blocklists/curated/adult.txt"),
        str(tmp_path / "blocklists/extra/adult.txt"),
        "https://example.org/a.txt",
    ]
    # A category defined in the config replaces the catalogue's one of the same name.
    assert by_name["social"].sources == () and by_name["social"].domains == ("tiktok.com",)
    assert by_name["own"].sources[0].location == str(tmp_path / "mine.txt")


def test_catalogue_problems_name_the_catalogue_file(tmp_path):
    catalogue = write(tmp_path, "categories:\n  adult:\n    sauces: [a.txt]\n", name="lists/catalogue.yaml")
    path = write(tmp_path, "catalogue: lists/catalogue.yaml\n")
    assert only_problem(path) == f"{catalogue}:3: categories.adult.sauces: unknown key (did you mean 'sources'?)"


def test_missing_catalogue_is_a_located_problem(tmp_path):
    path = write(tmp_path, "catalogue: nowhere/catalogue.yaml\n")
    assert only_problem(path).startswith(f"{path}:1: catalogue: cannot read {tmp_path / 'nowhere/catalogue.yaml'}")


# --------------------------------------------------------------------------- embedded default


RESOLV_CONF = """\
# generated by something
search school.example
nameserver 192.0.2.53
nameserver 2001:db8::53
nameserver fe80::1%eth0
options edns0 trust-ad
"""


def test_system_resolvers_read_resolv_conf(tmp_path):
    path = write(tmp_path, RESOLV_CONF, name="resolv.conf")
    assert [s.endpoint for s in system_resolvers(path)] == [
        Endpoint("192.0.2.53", 53),
        Endpoint("2001:db8::53", 53),
        Endpoint("fe80::1", 53),
    ]


@pytest.mark.parametrize("text", ["", "# nothing here\nsearch example\n"])
def test_system_resolvers_fall_back_when_none_are_listed(tmp_path, text):
    path = write(tmp_path, text, name="resolv.conf")
    assert [(s.endpoint, s.name) for s in system_resolvers(path)] == [
        (Endpoint("9.9.9.9", 53), "quad9"),
        (Endpoint("1.1.1.1", 53), "cloudflare"),
    ]
    assert [s.endpoint for s in system_resolvers(tmp_path / "missing")] == [Endpoint("9.9.9.9", 53), Endpoint("1.1.1.1", 53)]


def test_a_malformed_nameserver_line_skips_only_itself(tmp_path):
    path = write(tmp_path, "nameserver 192.0.2.1\nnameserver not-an-ip\nnameserver 192.0.2.2\n", name="resolv.conf")
    assert [s.endpoint.host for s in system_resolvers(path)] == ["192.0.2.1", "192.0.2.2"]


def test_default_config_uses_resolv_conf(tmp_path, monkeypatch):
    path = write(tmp_path, RESOLV_CONF, name="resolv.conf")
    monkeypatch.setattr(loader.system_resolvers, "__defaults__", (path,))
    config = default_config()
    assert config.node.upstream.servers[0].endpoint == Endpoint("192.0.2.53", 53)
    assert len(config.node.upstream.servers) == 3
    assert config.node.server.listen[0] == Endpoint("127.0.0.1", 5353)
    assert [g.name for g in config.policy.groups] == ["default"] and config.node.source is None
    assert config.policy.categories == ()


def test_default_config_prefers_given_upstreams(tmp_path, monkeypatch):
    monkeypatch.setattr(loader.system_resolvers, "__defaults__", (tmp_path / "missing",))
    assert [s.endpoint for s in default_config().node.upstream.servers] == [Endpoint("9.9.9.9", 53), Endpoint("1.1.1.1", 53)]
    assert default_config([Endpoint("127.0.0.1", 5300)]).node.upstream.servers == (UpstreamServerConfig(Endpoint("127.0.0.1", 5300)),)


def test_data_protection_contacts(tmp_path):
    text = "reports:\n  data_protection: {controller: Escola Exemplo, officer: Carlos Lima, email: dpo@escola.example}\n"
    protection = load_config(write(tmp_path, text)).node.reports.data_protection
    assert (protection.controller, protection.officer, protection.email) == ("Escola Exemplo", "Carlos Lima", "dpo@escola.example")
