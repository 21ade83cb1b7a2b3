"""The people-facing side of a node: ``web`` (console and block page), ``mail`` (the SMTP
relay) and ``reports`` (parents' reports and the weekly digest)."""

from __future__ import annotations

from pathlib import Path

from filterdns import i18n
from filterdns.config import values as v
from filterdns.config.model import (
    DataProtection,
    MailConfig,
    ReportsConfig,
    SafeguardingContact,
    WebConfig,
    WebSettings,
)
from filterdns.config.yamlnodes import Reader, default_of


def read_web(reader: Reader, base: Path) -> WebConfig:
    """``web: {listen, tls_cert, tls_key, blockpage_listen, public_url, session_hours, ...}``.
    ``listen:`` written empty turns the console off; left out, the model's default applies."""
    values = reader.fields(
        WebConfig,
        {
            "tls_cert": lambda value: base / str(value),
            "tls_key": lambda value: base / str(value),
            "blockpage_listen": v.parse_endpoint,
            "public_url": v.http_url,
        },
    )
    written = "listen" in reader.entries
    values["listen"] = reader.get("listen", v.parse_endpoint, None if written else default_of(WebConfig, "listen"))
    settings = WebSettings(
        **reader.fields(
            WebSettings,
            {
                "session_hours": v.positive_number,
                "idle_minutes": v.positive_number,
                "lock_after": v.at_least_one,
                "lock_minutes": v.positive_number,
                "ip_failures": v.at_least_one,
                "ip_window_minutes": v.positive_number,
            },
        )
    )
    reader.finish()
    if (values["tls_cert"] is None) != (values["tls_key"] is None):
        reader.ctx.fail(reader.node, "web.tls_cert", "TLS needs both tls_cert and tls_key")
    return WebConfig(settings=settings, **values)


def read_mail(reader: Reader, base: Path) -> MailConfig:
    """``mail: {host, port, security, username, password | password_file, from, timeout,
    max_attempts, retry_initial, retry_max}``. The password is best kept in its own file
    (readable by the service only), so config.yaml can be shared without it."""
    values = reader.fields(
        MailConfig,
        {
            "host": v.text,
            "port": v.port,
            "security": v.choice_of(MailConfig, "security"),
            "username": v.text,
            "password": v.text,
            "sender": ("from", v.mail_address),
            "timeout": v.positive_duration,
            "max_attempts": v.at_least_one,
            "retry_initial": v.positive_duration,
            "retry_max": v.positive_duration,
        },
    )
    password_file = reader.get("password_file", lambda value: base / str(value), None)
    if password_file is not None:
        try:
            values["password"] = password_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            reader.ctx.fail(reader.node_of("password_file"), "mail.password_file", f"cannot read it: {error.strerror}")
    reader.finish()
    mail = MailConfig(**values)
    if mail.host and not mail.sender:
        reader.ctx.fail(reader.node, "mail.from", "sending mail needs a From address (mail.from)")
    return mail


def read_reports(reader: Reader) -> ReportsConfig:
    """``reports: {language, mask_below, safeguarding_contact: {name, role, email, phone},
    data_protection: {controller, officer, email}, digest: {enabled, day, time}}``."""
    digest = reader.sub("digest")
    contact = reader.sub("safeguarding_contact")
    protection = reader.sub("data_protection")
    values = reader.fields(ReportsConfig, {"language": language_tag, "mask_below": v.at_least_one})
    values.update(
        digest.fields(
            ReportsConfig,
            {"digest": ("enabled", v.boolean), "digest_day": ("day", v.weekday), "digest_time": ("time", v.clock_time)},
        )
    )
    values["safeguarding_contact"] = SafeguardingContact(
        **contact.fields(
            SafeguardingContact, {"name": v.text, "role": v.text, "email": v.mail_address, "phone": v.text}
        )
    )
    values["data_protection"] = DataProtection(
        **protection.fields(DataProtection, {"controller": v.text, "officer": v.text, "email": v.mail_address})
    )
    digest.finish()
    contact.finish()
    protection.finish()
    reader.finish()
    return ReportsConfig(**values)


def language_tag(value: object) -> str:
    """A language the catalogues have, written as its tag ("pt-BR"; any case)."""
    found = i18n.supported(str(value))
    if found is None:
        raise ValueError(f"'{value}' is not a language filterdns speaks: {', '.join(x.tag for x in i18n.LANGUAGES)}")
    return found.tag
