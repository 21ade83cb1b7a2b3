"""Parents' notes to the school through the real console (issue 19, two-way): a parent writes
about one of their children from the family page, the note reaches the staff's Reviews
queue with the child's context, staff of that child's group answer, and the parent reads
the answer; nobody else sees any of it."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from filterdns.store import AuditFilter
from tests.support.web import Console, make_console

NOTE = "The maths homework site is blocked at home"


@pytest.fixture
async def console(tmp_path: Path):
    async with make_console(tmp_path) as console:
        await console.store.save_parent_profile("pat", [("Bia Silva", "7b")])
        await console.add_user("pam", "parent", ("8c",))
        await console.store.save_parent_profile("pam", [("Caio Lima", "8c")])
        yield console


async def send_note(console: Console, parent: str, **form: str) -> int:
    token = await console.logged_in(parent)
    response = await console.post("/family/notes", form, token)
    return response.status


async def test_a_parents_note_reaches_reviews_is_answered_and_only_they_see_the_answer(console: Console):
    status = await send_note(console, "pat", child="7b:Bia Silva", place="home", site="https://Maths.Example/hw?x=1", text=NOTE)
    assert status == 303
    (note,) = await console.store.list_parent_notes()
    assert (note.parent, note.child, note.group, note.place, note.site) == ("pat", "Bia Silva", "7b", "home", "maths.example")
    mine = await console.page("/family")
    assert NOTE in mine and f'id="note-answer-{note.id}"' not in mine and "Not answered yet." in mine

    # Teachers of another group, viewers and other parents see none of it and cannot answer.
    for outsider in ("tess", "vic"):
        await console.logged_in(outsider)
        assert NOTE not in await console.page("/reviews")
    token = await console.logged_in("tess")
    response = await console.post(f"/reviews/notes/{note.id}/answer", {"answer": "No"}, token)
    assert response.status == 409 and "not one of yours" in await response.text()
    await console.logged_in("pam")
    assert NOTE not in await console.page("/family") and "Bia Silva" not in await console.page("/family")

    # The child's teacher sees the note with the child's context and answers it.
    token = await console.logged_in("tom")
    queue = await console.page("/reviews")
    row = queue.split(f'id="parent-note-{note.id}"')[1].split("</tr>")[0]
    assert all(part in row for part in ("Bia Silva", "7b", "at home", "maths.example", NOTE, "pat"))
    response = await console.post(f"/reviews/notes/{note.id}/answer", {"answer": "  "}, token)
    assert response.status == 409 and "Write an answer" in await response.text()
    response = await console.post(f"/reviews/notes/{note.id}/answer", {"answer": "Unblocked for 7b's homework."}, token)
    assert response.status == 303 and response.headers["Location"] == "/reviews?done=answered"
    assert f'id="parent-note-{note.id}"' not in await console.page("/reviews")  # no longer waiting
    assert "Unblocked for 7b&#39;s homework." in await console.page("/reviews?show=decided")
    response = await console.post(f"/reviews/notes/{note.id}/answer", {"answer": "twice"}, token)
    assert response.status == 409  # answered already
    actions = [e.action for e in await console.store.list_audit(AuditFilter())]
    assert "parent.note" in actions and "parent.note.answer" in actions

    await console.logged_in("pat")
    mine = await console.page("/family")
    answer = mine.split(f'id="note-answer-{note.id}"')[1].split("</p>")[0]
    assert "Unblocked for 7b&#39;s homework." in answer
    await console.logged_in("pam")
    assert "Unblocked for 7b" not in await console.page("/family")


async def test_admins_see_and_answer_every_note(console: Console):
    await send_note(console, "pam", child="8c:Caio Lima", place="school", site="", text="Worried about a chat site")
    (note,) = await console.store.list_parent_notes()
    token = await console.logged_in("tom")
    assert "Worried about a chat site" not in await console.page("/reviews")
    token = await console.logged_in("ada")
    assert "Worried about a chat site" in await console.page("/reviews")
    response = await console.post(f"/reviews/notes/{note.id}/answer", {"answer": "We will talk to the class."}, token)
    assert response.status == 303
    answered = (await console.store.list_parent_notes())[0]
    assert (answered.answer, answered.answered_by) == ("We will talk to the class.", "ada")


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"child": "8c:Caio Lima", "place": "home", "text": "x"}, "Please choose one of your children."),
        ({"child": "7b:Bia Silva", "place": "moon", "text": "x"}, "Please say whether it happened at home or at school."),
        ({"child": "7b:Bia Silva", "place": "home", "text": "  "}, "Please write what the note is about."),
        ({"child": "7b:Bia Silva", "place": "home", "text": "x" * 1001}, "A note can be at most 1000 characters long."),
        ({"child": "7b:Bia Silva", "place": "home", "site": "not a site", "text": "x"}, "The site does not look like a web address"),
    ],
)
async def test_a_note_that_cannot_be_sent_says_why_and_keeps_what_was_typed(console: Console, form, problem):
    token = await console.logged_in("pat")
    response = await console.post("/family/notes", form, token)
    text = html.unescape(await response.text())
    assert response.status == 422 and problem in text
    assert await console.store.list_parent_notes() == []


async def test_the_note_form_is_in_portuguese(console: Console):
    token = await console.logged_in("pat")
    response = await console.post("/family/notes?lang=pt-BR", {"child": "7b:Bia Silva", "place": "home", "text": " "}, token)
    text = html.unescape(await response.text())
    assert "Escrever para a escola" in text and "Escreva do que se trata a mensagem." in text
    assert "Write to the school" not in text and "Please write" not in text
