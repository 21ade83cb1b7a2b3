"""The roster and ChromeOS's hashed ids: parsing, look-ups, the group for unknown ids."""

from __future__ import annotations

import pytest

from filterdns.config.model import GroupConfig, ScheduledRule
from filterdns.identity.hashing import check_salt, chromeos_hash, fill_template
from filterdns.identity.roster import Roster, RosterError, parse_roster, roster_csv
from filterdns.server.encrypted import strictest_group

GROUPS = {"staff", "year7", "year8"}
CSV = """Pupil ID,Display name,Group,Email,Device IDs
p-101,Ann Example,year7,Ann@School.test,cb-1;cb-2
p-102,Bob Example,year8,bob@school.test,
,Library cart,year8,,cart-9
t-1,Tess Teacher,staff,tess@school.test,
"""


def test_chromium_test_vectors() -> None:
    # The expected values are those of Chromium's templates_uri_resolver_impl_unittest.cc,
    # for the user test-user@testdomain.com and the device directory id below.
    assert chromeos_hash("test-user@testdomain.com", "test-salt") == (
        "EAE2DCB2164EB64B695BC555C4EC45D01C8F0DF73CCD3321E45E5B49F22A22DF"
    )
    assert chromeos_hash("85729104-ef7a-5718d62e72ca", "test-salt") == (
        "542BD404A979AB36D342019A18FFE0691B7763C1D145F2D7119FC1DCBBB7B248"
    )
    assert chromeos_hash("test-user@testdomain.com", "") == (
        "B07D2C5D119EB1881671C3B8D84CBE4FE3595C0C9ECBBF7670B18DDFDA072F66"
    )


def test_fill_template_replaces_each_placeholder_with_its_hash() -> None:
    filled = fill_template(
        "https://dns.school.test/dns-query/${USER_EMAIL}-${DEVICE_DIRECTORY_ID}{?dns}",
        "test-salt", email="test-user@testdomain.com", device_id="85729104-ef7a-5718d62e72ca",
    )
    assert filled == (
        "https://dns.school.test/dns-query/EAE2DCB2164EB64B695BC555C4EC45D01C8F0DF73CCD3321E45E5B49F22A22DF-"
        "542BD404A979AB36D342019A18FFE0691B7763C1D145F2D7119FC1DCBBB7B248{?dns}"
    )


@pytest.mark.parametrize("salt", ["short", "x" * 33])
def test_a_salt_chromeos_would_ignore_is_refused(salt: str) -> None:
    with pytest.raises(ValueError, match="8 to 32"):
        check_salt(salt)


def roster(salt: str = "school-salt") -> Roster:
    return Roster(parse_roster(CSV, GROUPS), salt=salt, unknown_group="year8")


def test_ids_name_the_pupil_and_group_whatever_their_case() -> None:
    r = roster()
    for client_id in ("p-101", "P-101", "cb-2", "ann@school.test"):
        identity = r.identify(client_id)
        assert (identity.label, identity.group, identity.known) == ("p-101", "year7", True)
    assert r.identify("t-1").group == "staff"


def test_a_device_without_a_pupil_is_named_as_a_device() -> None:
    identity = roster().identify("cart-9")
    assert (identity.label, identity.group) == ("device:cart-9", "year8")


def test_chromeos_hashes_of_emails_and_devices_match() -> None:
    r = roster("school-salt")
    assert r.identify(chromeos_hash("ann@school.test", "school-salt")).label == "p-101"
    assert r.identify(chromeos_hash("ann@school.test", "school-salt").lower()).label == "p-101"
    assert r.identify(chromeos_hash("cart-9", "school-salt")).label == "device:cart-9"
    # The same value under another salt is somebody unknown.
    assert not r.identify(chromeos_hash("ann@school.test", "other-salt")).known


def test_a_template_joining_two_hashes_is_matched_by_its_parts() -> None:
    r = roster("school-salt")
    unknown_device = chromeos_hash("", "school-salt")  # an unaffiliated user's device placeholder
    assert r.identify(f"{chromeos_hash('bob@school.test', 'school-salt')}-{unknown_device}").label == "p-102"


def test_an_unknown_id_gets_the_unknown_group_and_is_never_echoed() -> None:
    identity = roster().identify("someone@else.test")
    assert identity.group == "year8" and not identity.known
    assert identity.label.startswith("unknown:") and "someone" not in identity.label


def test_every_problem_is_reported_with_its_line() -> None:
    text = "pupil_id,group,email,device_ids\np1,year7,a@x.test,d1\np1,nope,not-mail,bad id!\n,year7,,\n"
    with pytest.raises(RosterError) as caught:
        parse_roster(text, GROUPS)
    problems = caught.value.problems
    assert "line 3: unknown group 'nope' (known: staff, year7, year8)" in problems
    assert "line 3: 'not-mail' is not an email address" in problems
    assert "line 3: 'id!' is not a usable id: letters, digits, '.', '_', '-', '@', '+' only" in problems
    assert "line 3: the id 'p1' is already used on line 2" in problems
    assert "line 4: a row needs a pupil id or at least one device id" in problems


def test_a_file_without_the_columns_is_refused() -> None:
    with pytest.raises(RosterError, match="line 1: the columns must include"):
        parse_roster("name,email\nAnn,ann@x.test\n", GROUPS)


def test_the_stored_form_reads_back_the_same() -> None:
    entries = parse_roster(CSV, GROUPS)
    assert parse_roster(roster_csv(entries), GROUPS) == entries


def test_the_strictest_pupil_group_is_chosen_never_staff() -> None:
    groups = [
        GroupConfig("staff", block=("malware", "adult", "phishing", "gambling", "games")),
        GroupConfig("year11", block=("adult",), rules=(ScheduledRule("lessons", block=("social",)),)),
        GroupConfig("year7", block=("adult", "gambling"), rules=(ScheduledRule("lessons", block=("social", "games")),)),
        GroupConfig("library", block=("adult", "gambling", "vpn"), bypass_protection=False),
    ]
    assert strictest_group(groups, "staff") == "year7"
    assert strictest_group([GroupConfig("staff")], "guests") == "guests"


def test_the_saved_roster_is_for_the_service_user_only(tmp_path) -> None:
    """It holds pupils' names and mail addresses: 0600 in a 0700 folder, whatever the umask."""
    import os
    import stat

    from filterdns.identity.roster import save_roster

    entries = parse_roster("pupil_id,display_name,group,email,device_ids\np1,Ada,year7,ada@school.example,\n", ["year7"])
    folder = tmp_path / "data"
    old = os.umask(0o022)
    try:
        save_roster(folder / "roster.csv", entries)
    finally:
        os.umask(old)
    assert stat.S_IMODE((folder / "roster.csv").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert not list(folder.glob("*.tmp"))
    assert "ada@school.example" in (folder / "roster.csv").read_text()
