"""Parents and the weekly class report through the real console: who may see which class,
shared links (good, expired, tampered, revoked), parent accounts (one by one, CSV import,
one-time password links), languages (English, Brazilian Portuguese; Accept-Language,
the parent's setting, ?lang=), privacy of the page (no names, no clients, masked counts),
and the gettext catalogues themselves."""

from __future__ import annotations

import ast
import re
from dataclasses import replace
import time
from pathlib import Path
from urllib.parse import unquote

import jinja2
import pytest
import yaml
from aiohttp import FormData

from filterdns import i18n
from filterdns.accounts.parent_csv import parse_parent_csv
from filterdns.accounts.passwords import NO_PASSWORD
from filterdns.config.loader import load_config
from filterdns.links import LINK_SECRET, link_path, link_signature
from filterdns.store import AuditFilter
from tests.support.web import CONFIG_YAML, PASSWORD, Console, event, make_console

REPO = Path(__file__).resolve().parents[1]
REPORT_TITLE = "Online safety report: class 7b"
PT_REPORT_TITLE = "Relatório de segurança on-line: turma 7b"


@pytest.fixture
async def console(tmp_path: Path):
    async with make_console(tmp_path) as console:
        yield console


async def page(console: Console, path: str, status: int = 200, **headers: str) -> str:
    response = await console.client.get(path, headers=headers, allow_redirects=False)
    text = await response.text()
    assert response.status == status, (path, response.status, text[-800:])
    return text


def anonymous(console: Console) -> None:
    console.client.session.cookie_jar.clear()


# --- who sees what ------------------------------------------------------------------------------


async def test_a_parent_sees_their_class_and_nothing_else(console: Console):
    await console.logged_in("pat")
    assert REPORT_TITLE in await page(console, "/reports/7b")
    for other in ("/reports/8c", "/reports/guests", "/reports/no-such-class"):
        assert "Not one of your classes" in await page(console, other, 403)
    home = await page(console, "/family")
    assert 'id="class-7b" href="/reports/7b"' in home and "class-8c" not in home
    front = await console.client.get("/", allow_redirects=False)
    assert front.status == 303 and front.headers["Location"] == "/family"
    for staff_page in ("/reports", "/parents", "/querylog"):
        await page(console, staff_page, 403)
    response = await console.client.post("/reports/7b/share", data={"days": "7", "csrf_token": await console.csrf("/family")})
    assert response.status == 403


async def test_logged_out_visitors_are_sent_to_the_parents_login(console: Console):
    for path in ("/reports/7b?week=2026-03-02", "/family"):
        response = await console.client.get(path, allow_redirects=False)
        assert response.status == 303
        location = response.headers["Location"]
        assert location.startswith("/family/login?next=") and unquote(location.split("next=")[1]) == path


async def test_parents_log_in_on_their_own_page_in_their_language(console: Console):
    login = await page(console, "/family/login?next=/reports/7b", **{"Accept-Language": "pt-BR,pt;q=0.9"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
    assert 'id="family-email"' in login and "Endereço de e-mail" in login
    form = {"username": "pat", "password": "wrong-wrong-wrong", "next": "/reports/7b", "csrf_token": token}
    failed = await console.client.post("/family/login", data=form, headers={"Accept-Language": "pt-BR"})
    assert failed.status == 401 and "E-mail ou senha incorretos" in await failed.text()
    response = await console.client.post("/family/login", data={**form, "password": PASSWORD}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/reports/7b"
    assert REPORT_TITLE in await page(console, "/reports/7b")
    assert [e.action for e in await console.store.list_audit(AuditFilter(actor="pat"))] == ["login"]


async def test_staff_see_the_reports_of_their_groups(console: Console):
    await console.logged_in("tom")
    index = await page(console, "/reports")
    assert 'id="report-7b"' in index and 'id="report-8c"' not in index
    text = await page(console, "/reports/7b")
    assert REPORT_TITLE in text and 'id="share-form"' in text and 'id="back-to-console"' in text
    refused = await page(console, "/reports/8c", 403)
    # In the console's words for staff, not the parents' "your own child's classes" (#20 item 4).
    assert "8c is not one of your groups" in refused and "(your groups: 7b)" in refused and "Users page" in refused
    assert "child" not in refused and "Not one of your classes" not in refused
    assert "There is no group called nope" in await page(console, "/reports/nope", 404)
    anonymous(console)
    await console.logged_in("vic")
    text = await page(console, "/reports/8c")
    assert "Online safety report: class 8c" in text and 'id="share-form"' not in text


# --- shared links ----------------------------------------------------------------------------------


async def share(console: Console, group: str, days: int) -> str:
    token = await console.csrf(f"/reports/{group}")
    response = await console.client.post(f"/reports/{group}/share", data={"days": str(days), "csrf_token": token})
    text = await response.text()
    assert response.status == 201, text[-500:]
    link = re.search(r'<code id="shared-link">([^<]+)</code>', text).group(1)
    return link.removeprefix(str(console.client.make_url("")).rstrip("/"))


async def test_a_shared_link_works_expires_and_refuses_tampering(console: Console):
    await console.logged_in("ada")
    path = await share(console, "7b", 7)
    _, _, group, expiry, signature = path.split("/")
    assert group == "7b" and abs(int(expiry) - (time.time() + 7 * 86_400)) < 60
    audit = await console.store.list_audit(AuditFilter(action="report.share"))
    assert audit[0].target == "7b" and audit[0].detail["days"] == 7
    anonymous(console)
    text = await page(console, path)
    assert REPORT_TITLE in text and 'id="share-form"' not in text and 'id="logout"' not in text
    assert REPORT_TITLE in await page(console, path + "?week=2026-03-02&lang=en")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for tampered in (
        f"/r/8c/{expiry}/{signature}",  # another class
        f"/r/7b/{int(expiry) + 86_400}/{signature}",  # a longer life
        f"/r/7b/{expiry}/{flipped}",
        f"/r/7b/soon/{signature}",
    ):
        assert "This link does not work" in await page(console, tampered, 404)
    secret = await console.store.get_secret(LINK_SECRET, "unused")
    past = int(time.time()) - 60
    expired = link_path("7b", past, link_signature(secret, "7b", past))
    assert "This link has expired" in await page(console, expired, 410)
    # Signed with the real key (leaked, say) but longer than any link the console makes.
    for days, status in ((29, 200), (31, 404), (5 * 365, 404)):
        far = int(time.time()) + days * 86_400
        await page(console, link_path("7b", far, link_signature(secret, "7b", far)), status)
    # A new key revokes every link made so far.
    await console.logged_in("ada")
    response = await console.post("/parents/rotate", {}, await console.csrf("/parents"))
    assert response.status == 303
    anonymous(console)
    await page(console, path, 404)


async def test_teachers_share_their_own_groups_only(console: Console):
    await console.logged_in("tom")
    await share(console, "7b", 1)
    token = await console.csrf("/reports/7b")
    assert (await console.post("/reports/8c/share", {"days": "1"}, token)).status == 403
    assert (await console.post("/reports/7b/share", {"days": "0"}, token)).status == 400
    assert (await console.post("/reports/7b/share", {"days": "31"}, token)).status == 400


# --- parent accounts ------------------------------------------------------------------------------


def csv_upload(text: str, token: str) -> FormData:
    form = FormData()
    form.add_field("csrf_token", token)
    form.add_field("file", text.encode(), filename="parents.csv", content_type="text/csv")
    return form


async def import_csv(console: Console, text: str, status: int) -> str:
    token = await console.csrf("/parents")
    response = await console.client.post("/parents/import", data=csv_upload(text, token))
    body = await response.text()
    assert response.status == status, body[-1500:]
    return body


async def test_csv_import_checks_every_line_and_applies_all_or_nothing(console: Console):
    await console.logged_in("ada")
    bad = (
        "parent_email,child_name,class_group\n"
        "ana.silva@example.org,Bia Silva,7b\n"
        "not-an-email,Caio,7b\n"
        "joao@example.org,,8c\n"
        "maria@example.org,Duda,9z\n"
        "tom,Edu,7b\n"
        "plus+tag@example.org,Fabi,8c\n"
    )
    text = await import_csv(console, bad, 422)
    for expected in (
        "line 3: &#39;not-an-email&#39; is not an email address",
        "line 4: the child&#39;s name is empty",
        "line 5: there is no class group &#39;9z&#39;",
        "line 6: &#39;tom&#39; is not an email address",
        "line 7: &#39;plus+tag@example.org&#39; cannot be a login name",
        "Nothing was imported",
    ):
        assert expected in text, expected
    assert [u.name for u in await console.store.list_users() if u.role == "parent"] == ["pat"]

    good = (
        "\ufeffParent_Email;Child_Name;Class_Group\n"  # Excel: a BOM and semicolons
        "Ana.Silva@example.org;Bia  Silva;7b\n"
        "ana.silva@example.org;Caio Silva;8c\n"
        "joao@example.org;Duda;8c\n"
        "\n"
    )
    text = await import_csv(console, good, 200)
    assert "Imported: 2 accounts created, 0 updated." in text
    links = re.findall(r'<code id="password-link-\d+">([^<]+)</code>', text)
    assert len(links) == 2 and all("/family/welcome/" in link for link in links)
    ana = await console.store.get_user("ana.silva@example.org")
    assert ana.role == "parent" and ana.groups == ("7b", "8c") and ana.password_hash == NO_PASSWORD
    profile = await console.store.get_parent_profile("ana.silva@example.org")
    assert profile.children == (("Bia Silva", "7b"), ("Caio Silva", "8c"))

    # Importing again replaces the children of the parents it names, and makes no new links.
    text = await import_csv(console, "parent_email,child_name,class_group\nana.silva@example.org,Caio Silva,8c\n", 200)
    assert "Imported: 0 accounts created, 1 updated." in text and "password-link-" not in text
    assert (await console.store.get_user("ana.silva@example.org")).groups == ("8c",)
    # A staff account's name is refused.
    await console.store.create_user("staff@example.org", "teacher", "x")
    text = await import_csv(console, "parent_email,child_name,class_group\nstaff@example.org,X,7b\n", 422)
    assert "line 2: &#39;staff@example.org&#39; is the name of a teacher account" in text
    assert "missing: class_group" in await import_csv(console, "parent_email,child_name\na@b.org,X\n", 422)


def test_csv_parser_reports_line_numbers():
    result = parse_parent_csv('parent_email,child_name,class_group\n"a@b.org","Multi\nline",7b\nbad,X,7b\n', ["7b"])
    assert result.children == {"a@b.org": [("Multi line", "7b")]}
    assert result.errors == ["line 4: 'bad' is not an email address"]
    assert parse_parent_csv("", ["7b"]).errors == ["the file is empty"]


async def test_the_password_link_works_once(console: Console):
    await console.logged_in("ada")
    token = await console.csrf("/parents")
    form = {"email": "Lu@Example.org", "child": "Rafa", "groups": "7b", "language": "pt-BR"}
    response = await console.post("/parents", form, token)
    text = await response.text()
    assert response.status == 201 and "Parent account created." in text
    link = re.search(r'<code id="password-link-1">[^<]*(/family/welcome/[^<]+)</code>', text).group(1)
    assert (await console.store.get_parent_profile("lu@example.org")).language == "pt-BR"

    anonymous(console)
    form_page = await page(console, link)
    assert "Escolha a sua senha" in form_page  # in the language staff chose for this parent
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form_page).group(1)
    short = await console.client.post(link, data={"password": "short", "password2": "short", "csrf_token": csrf})
    assert short.status == 422 and "a senha precisa ter pelo menos 12 caracteres" in await short.text()
    new_password = "meadow-lantern-river-7"
    response = await console.client.post(
        link, data={"password": new_password, "password2": new_password, "csrf_token": csrf}, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/family"
    home = await page(console, "/family")
    assert "Turma 7b" in home and "Rafa" in home  # logged in, in the saved language
    assert "Esta não é uma das suas turmas" in await page(console, "/reports/8c", 403)
    anonymous(console)
    assert "This link does not work" in await page(console, link, 404)
    assert (await console.login("lu@example.org", new_password)).status == 303


async def test_admins_add_parents_and_manage_them(console: Console):
    await console.logged_in("ada")
    token = await console.csrf("/parents")
    refused = await console.post("/parents", {"email": "tom", "child": "X", "groups": "7b"}, token)
    assert refused.status == 422 and "is not an email address" in await refused.text()
    await console.store.create_user("tina@example.org", "teacher", "x")
    refused = await console.post("/parents", {"email": "tina@example.org", "child": "X", "groups": "7b"}, token)
    assert refused.status == 422 and "is the name of a teacher account" in await refused.text()
    assert (await console.post("/parents", {"email": "a@b.org", "child": "X"}, token)).status == 422

    await console.post("/parents", {"email": "a@b.org", "child": "Ivo", "groups": "7b"}, token)
    updated = await console.post("/parents", {"email": "a@b.org", "child": "Iza", "groups": "8c"}, token)
    assert updated.status == 200 and "password-link-" not in await updated.text()
    assert (await console.store.get_user("a@b.org")).groups == ("7b", "8c")
    listing = await page(console, "/parents")
    assert 'id="parent-a-at-b-org"' in listing and "Ivo (7b), Iza (8c)" in listing and "waiting for first login" in listing

    response = await console.post("/parents/a@b.org/link", {}, token)
    assert "New password link made" in await response.text()
    assert (await console.post("/parents/tom/link", {}, token)).status == 404  # staff: not here
    asked = await console.post("/parents/a@b.org/delete", {}, token)
    assert asked.status == 200 and "no more weekly digests" in await asked.text()
    assert await console.store.get_user("a@b.org") is not None  # asking changes nothing
    assert (await console.post("/parents/a@b.org/delete", {"confirmed": "yes"}, token)).status == 303
    assert await console.store.get_user("a@b.org") is None
    actions = [e.action for e in await console.store.list_audit(AuditFilter(actor="ada"))]
    assert {"parent.add", "parent.update", "parent.link", "parent.delete"} <= set(actions)
    anonymous(console)
    await console.logged_in("vic")
    listing = await page(console, "/parents")
    assert 'id="parents"' in listing and 'id="import-form"' not in listing


# --- languages ------------------------------------------------------------------------------------


async def test_language_from_the_browser_the_setting_and_the_url(console: Console):
    await console.logged_in("pat")
    english = await page(console, "/reports/7b", **{"Accept-Language": "fr-FR, en;q=0.5"})
    assert '<html lang="en">' in english and REPORT_TITLE in english
    portuguese = await page(console, "/reports/7b", **{"Accept-Language": "pt-PT,pt;q=0.9,en;q=0.8"})
    assert '<html lang="pt-BR">' in portuguese and PT_REPORT_TITLE in portuguese
    assert "Acessos bloqueados" in portuguese and "Dicas para as famílias" in portuguese
    assert 'id="lang-en"' in portuguese and 'id="lang-pt-BR"' in portuguese
    # ?lang= wins and is kept in the page's links.
    chosen = await page(console, "/reports/7b?lang=en", **{"Accept-Language": "pt-BR"})
    assert REPORT_TITLE in chosen and re.search(r'id="week-prev" href="/reports/7b\?lang=en&amp;week=', chosen)
    # The parent's own setting wins over the browser.
    response = await console.post("/family/language", {"language": "pt-BR"}, await console.csrf("/family"))
    assert response.status == 303
    assert PT_REPORT_TITLE in await page(console, "/reports/7b", **{"Accept-Language": "en"})
    assert "Idioma" in await page(console, "/family?saved=1")
    await console.post("/family/language", {"language": ""}, await console.csrf("/family"))
    assert REPORT_TITLE in await page(console, "/reports/7b", **{"Accept-Language": "en"})


def test_accept_language_negotiation():
    assert i18n.negotiate("pt-BR").tag == "pt-BR"
    assert i18n.negotiate("pt").tag == "pt-BR"
    assert i18n.negotiate("de, pt-PT;q=0.5").tag == "pt-BR"
    assert i18n.negotiate("pt;q=0, en;q=0.1").tag == "en"
    assert i18n.negotiate("en-GB,pt-BR;q=0.9").tag == "en"
    assert i18n.negotiate("*").tag == "en" and i18n.negotiate(None).tag == "en"
    brazilian_school = i18n.language("pt-BR")
    assert i18n.negotiate("de", brazilian_school).tag == "pt-BR" and i18n.negotiate("en", brazilian_school).tag == "en"
    assert i18n.choose(asked=None, saved="", accept_language=None, default=brazilian_school).tag == "pt-BR"
    assert i18n.choose(asked="PT-br", saved="en", accept_language="en").tag == "pt-BR"
    assert i18n.choose(asked="xx", saved="", accept_language="pt").tag == "pt-BR"


def extracted_messages() -> set[str]:
    """Every message id the family pages, the mail and the block page use: _() in their templates, N_() in
    Python, and the catalogue's category descriptions."""
    messages: set[str] = set()
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    templates = REPO / "admin_ui" / "templates"
    for template in (*(templates / "parents").rglob("*.*"), *(templates / "blockpage").rglob("*.*")):
        for _, _, message in env.extract_translations(template.read_text()):
            messages.add(message[0] if isinstance(message, tuple) else message)
    for module in (
        "filterdns/reports/guidance.py", "filterdns/reports/digest.py", "filterdns/reports/privacy.py", "filterdns/reports/help.py", "filterdns/reports/notice.py", "filterdns/web/blockpage.py", "filterdns/accounts/service.py", "filterdns/i18n.py",
        "filterdns/web/family.py", "filterdns/web/views_family.py", "filterdns/web/views_reports.py",
        "filterdns/web/views_parents.py", "filterdns/web/views_digest.py", "filterdns/server/parent_notes.py",
    ):  # fmt: skip
        for node in ast.walk(ast.parse((REPO / module).read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "N_":
                messages.add(node.args[0].value)
    catalogue = yaml.safe_load((REPO / "blocklists" / "catalogue.yaml").read_text())
    messages.update(c["description"] for c in catalogue["categories"].values())
    return messages


def test_every_message_is_in_every_catalogue_and_translated():
    messages = extracted_messages()
    assert len(messages) > 150
    for language in i18n.LANGUAGES:
        text = i18n.po_path(language).read_text(encoding="utf-8")
        ids = set(re.findall(r'^msgid "(.*)"$', text, re.MULTILINE))
        listed = {ast.literal_eval(f'"{m}"') for m in ids} - {""}
        assert messages - listed == set(), language.tag
        assert listed - messages == set(), f"{language.tag}: unused messages"
    portuguese = i18n.parse_po(i18n.po_path(i18n.language("pt-BR")).read_text(encoding="utf-8"))
    assert messages - set(portuguese) == set()  # every one translated
    for message in messages:  # the same %(placeholders)s on both sides
        assert sorted(re.findall(r"%\(\w+\)s", message)) == sorted(re.findall(r"%\(\w+\)s", portuguese[message]))


def test_po_compiles_to_a_catalogue_gettext_reads():
    po = (
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n"Plural-Forms: nplurals=2; plural=(n > 1);\\n"\n\n'
        '# a comment\nmsgid "Hello"\nmsgstr "Olá"\n\n'
        '#, fuzzy\nmsgid "Draft"\nmsgstr "Rascunho"\n\n'
        'msgid "Empty"\nmsgstr ""\n\n'
        'msgid ""\n"one long "\n"message \\"quoted\\""\nmsgstr "uma longa mensagem \\"citada\\""\n\n'
        'msgid "%(n)s week"\nmsgid_plural "%(n)s weeks"\nmsgstr[0] "%(n)s semana"\nmsgstr[1] "%(n)s semanas"\n'
    )
    import gettext
    import io

    catalogue = gettext.GNUTranslations(io.BytesIO(i18n.compile_po(po)))
    assert catalogue.gettext("Hello") == "Olá"
    assert catalogue.gettext("Draft") == "Draft" and catalogue.gettext("Empty") == "Empty"
    assert catalogue.gettext('one long message "quoted"') == 'uma longa mensagem "citada"'
    assert catalogue.ngettext("%(n)s week", "%(n)s weeks", 1) == "%(n)s semana"
    assert catalogue.ngettext("%(n)s week", "%(n)s weeks", 2) == "%(n)s semanas"
    with pytest.raises(ValueError, match="line 1"):
        i18n.parse_po("msgctxt \"x\"\n")


# --- privacy of the page ----------------------------------------------------------------------------


SECRET_NAMES = ("private-diary.example", "adult.example", "games.example", "youtube.com", "a-child-s-search.example")


# The week's 15 lookups each come from a device of its own (a figure needs devices, not
# just lookups, to be shown).
CLIENTS = tuple(f"10.0.7.{200 + i}" for i in range(15))


async def seed_week(console: Console) -> None:
    now = time.time() - 120
    kinds = (
        [(SECRET_NAMES[0], "allowed", "")] * 5 + [("adult.example", "blocked", "adult")] * 2
        + [("games.example", "blocked", "games")] * 4 + [("youtube.com", "rewritten", "")]
        + [(SECRET_NAMES[4], "blocked", "")] * 3
    )  # fmt: skip
    await console.store.insert_events([
        event(name, verdict=verdict, category=category, client=client, t=now)
        for (name, verdict, category), client in zip(kinds, CLIENTS, strict=True)
    ])


async def test_the_report_never_shows_names_or_clients_and_masks_small_counts(console: Console):
    await seed_week(console)
    await console.logged_in("ada")
    link = await share(console, "7b", 1)
    pages = [await page(console, "/reports/7b")]
    anonymous(console)
    pages.append(await page(console, link))
    await console.logged_in("pat")
    pages.append(await page(console, "/reports/7b"))
    pages.append(await page(console, "/reports/7b?lang=pt-BR"))
    for html in pages:
        for secret in (*SECRET_NAMES, *CLIENTS):
            assert secret not in html
    english = pages[2]
    assert re.search(r'id="lookups">15<', english) and re.search(r'id="blocked">9<', english)
    assert re.search(r'id="count-games">4<', english) and re.search(r'id="count-individual-sites">3<', english)
    assert re.search(r'id="count-adult"><span class="masked">fewer than 3</span>', english)
    assert "Adult content" in english and "Tips for families" in english
    assert re.search(r'id="count-adult"><span class="masked">menos de 3</span>', pages[3])


async def test_the_masking_threshold_comes_from_the_config(console: Console, tmp_path: Path):
    await seed_week(console)
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(CONFIG_YAML + "reports: {mask_below: 5}\n")
    console.control.config = load_config(stricter)
    await console.logged_in("pat")
    html = await page(console, "/reports/7b")
    assert re.search(r'id="count-games"><span class="masked">fewer than 5</span>', html)
    assert not re.search(r'id="count-games">4<', html)


async def test_configured_descriptions_are_escaped(console: Console, tmp_path: Path):
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(CONFIG_YAML.replace('"Online games"', '"<script>alert(1)</script> games"'))
    console.control.config = load_config(hostile)
    await console.logged_in("pat")
    text = await page(console, "/reports/7b")
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; games" in text


async def test_the_privacy_notice_is_open_to_all_in_each_language_and_linked_from_every_family_page(console: Console):
    login = await page(console, "/family/login")
    assert 'id="privacy-link" href="/family/privacy"' in login
    english = await page(console, "/family/privacy")
    assert "Privacy notice" in english and "the UK GDPR and the Data Protection Act 2018" in english
    assert "mobile data (4G or 5G)" in english and "Childline" in english and "ico.org.uk" in english
    assert "for 30 days they can search the filter&#39;s log" in english
    portuguese = await page(console, "/family/privacy?lang=pt-BR")
    assert "Aviso de privacidade" in portuguese and "dados móveis (4G ou 5G)" in portuguese
    assert 'href="/family/privacy?lang=pt-BR"' in portuguese


async def test_a_forgotten_password_without_mail_sends_parents_to_the_school(console: Console):
    login = await page(console, "/family/login")
    assert 'id="forgot-link" href="/family/forgot"' in login
    text = await page(console, "/family/forgot?lang=pt-BR")
    assert "Peça à escola um novo link" in text and 'id="help"' in text and 'id="forgot-form"' not in text


async def test_a_forgotten_password_by_mail_tells_nobody_which_addresses_exist(console: Console):
    config = console.control.config
    console.control.config = config.with_node(mail=replace(config.node.mail, host="127.0.0.1", sender="filter@school.example"))
    await console.control.store.create_user("bia@example.org", "parent", "!", groups=["7b"])
    await console.control.store.create_user("off@example.org", "parent", "!", groups=["7b"])
    await console.control.store.update_user("off@example.org", disabled=True)

    async def ask(email: str) -> str:
        token = await console.csrf("/family/forgot")
        response = await console.client.post("/family/forgot", data={"email": email, "csrf_token": token})
        assert response.status == 200
        return await response.text()

    answers = {await ask(email) for email in ("bia@example.org", "nobody@example.org", "off@example.org", "pat")}
    assert len({re.sub(r'value="[^"]+"', "", a) for a in answers}) == 1 and 'id="reset-sent"' in answers.pop()
    (mail,) = await console.control.store.list_messages(kind="password")
    assert mail.recipient == "bia@example.org" and "within 60 minutes; it works once" in mail.body_text
    link = re.search(r"/family/welcome/(\S+)", mail.body_text).group(0)
    assert 'id="welcome-form"' in await page(console, link)
    token = await console.csrf(link)
    form = {"password": "a brand new secret phrase", "password2": "a brand new secret phrase", "csrf_token": token}
    response = await console.client.post(link, data=form, allow_redirects=False)
    assert response.status == 303
    anonymous(console)
    await page(console, link, 404)  # used: it works once
    # Two links an hour per account, then the same answer and no more mail.
    for _ in range(3):
        await ask("bia@example.org")
    assert len(await console.control.store.list_messages(kind="password")) == 2
    audit = await console.store.list_audit(AuditFilter(action="parent.reset-link"))
    assert [entry.target for entry in audit] == ["bia@example.org", "bia@example.org"]
