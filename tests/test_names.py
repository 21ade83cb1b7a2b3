"""One normaliser for domain names, whoever typed them: block lists, config.yaml and the
console all compare names in the form ``filterdns.names`` gives them."""

from __future__ import annotations

from pathlib import Path

import pytest

from filterdns.config.loader import ConfigError, load_config
from filterdns.names import domain_name, normalize_domain
from filterdns.policy.document import add_to_allow

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", "example.com"),
        ("  Example.COM.  ", "example.com"),
        (".example.com", "example.com"),  # Squid/UT1 "domain and subdomains"
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("MÜNCHEN.DE", "xn--mnchen-3ya.de"),
        ("xn--mnchen-3ya.de", "xn--mnchen-3ya.de"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("r1---sn-4g5e6nzz.googlevideo.com", "r1---sn-4g5e6nzz.googlevideo.com"),
        ("123.com", "123.com"),
        ("zip", "zip"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        ("1.2.3.4", None),
        ("a.b.123", None),
        ("::1", None),
        ("a..b.com", None),
        ("", None),
        (".", None),
        ("a" * 64 + ".com", None),
        ("exa mple.com", None),
        ("example.com/path", None),
        ("*.example.com", None),
        ("\ufffd.com", None),  # an undecodable byte after errors="replace"
    ],
)
def test_normalize_domain(text: str, expected: str | None) -> None:
    assert normalize_domain(text) == expected


def test_normalize_domain_total_length() -> None:
    name = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters
    assert len(name) == 253
    assert normalize_domain(name) == name
    assert normalize_domain(name + "b") is None



def test_domain_name_says_what_is_wrong_in_a_sentence() -> None:
    assert domain_name(" Bücher.Example. ") == "xn--bcher-kva.example"
    with pytest.raises(ValueError, match=r"^'10\.0\.0\.1' is not a domain name: it is an IP address$"):
        domain_name(" 10.0.0.1 ")
    with pytest.raises(ValueError, match=r"^'tiktok com' is not a domain name: it has a space in it"):
        domain_name("tiktok com")


def test_config_lists_use_the_same_form(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("allow: ['*.Bücher.Example.', 'A.test']\ndeny: [.squid.example]\n", encoding="utf-8")
    config = load_config(path)
    assert config.policy.allow_domains == ("xn--bcher-kva.example", "a.test")
    assert config.policy.deny_domains == ("squid.example",)
    path.write_text("deny: ['exa mple.com', 10.0.0.1]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "'exa mple.com' is not a domain name" in str(refused.value)
    assert "'10.0.0.1' is not a domain name" in str(refused.value)


def test_a_console_edit_compares_names_in_the_same_form() -> None:
    document = {"allow": ["xn--bcher-kva.example"]}
    assert add_to_allow(document, "BÜCHER.example.") == document  # already there: nothing added


def test_at_or_below_is_about_labels_not_characters():
    from filterdns.names import is_at_or_below

    assert is_at_or_below("example.org", "example.org")
    assert is_at_or_below("www.example.org", "example.org")
    assert not is_at_or_below("badexample.org", "example.org")
    assert not is_at_or_below("example.org", "www.example.org")
