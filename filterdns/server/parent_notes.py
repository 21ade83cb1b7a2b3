"""Notes from parents to the school, and the school's answers (issue 19, two-way).

A parent writes from the family page about a block or a concern ("this homework site is
blocked at home"), naming one of their own children and whether it happened at home or at
school, optionally a site. The note waits in the staff's Reviews queue with that context;
an administrator, or a teacher of the child's group, answers in a few words, and the parent
reads the answer on the family page.

Who sees a note: the parent who wrote it, administrators, and the teachers of the child's
group; nobody else (not viewers, not other parents), since it speaks about one child.
The messages of the ValueErrors here are message ids: the family page shows them translated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from filterdns import i18n
from filterdns.names import normalize_domain
from filterdns.store import ParentNote, User
from filterdns.store.reviews import Place

if TYPE_CHECKING:
    from filterdns.server.control import Control

MAX_NOTE = 1000  # characters: a note is a few sentences, not a letter
MAX_ANSWER = 1000
PLACES: tuple[Place, ...] = ("home", "school")
SHOWN = 100


@dataclass(frozen=True, slots=True)
class NoteChild:
    """A child a parent may write about: their name and class group; ``key`` names them in a form."""

    name: str
    group: str

    @property
    def key(self) -> str:
        return f"{self.group}:{self.name}"


def staff_scope(user: User) -> Sequence[str] | None:
    """The groups whose notes ``user`` sees: all (None) for admins, their own for teachers,
    none for anyone else."""
    if user.role == "admin":
        return None
    return tuple(user.groups) if user.role == "teacher" else ()


def site_of(text: str) -> str:
    """The site a parent typed or pasted (a name, or a whole address): its domain name, ""
    for none; ValueError when it is neither."""
    text = text.strip()
    if not text:
        return ""
    host = urlsplit(text if "://" in text else f"//{text}").hostname or ""
    name = normalize_domain(host)
    if name is None:
        raise ValueError(i18n.N_("The site does not look like a web address, such as maths.example.org."))
    return name


class ParentNotes:
    """Writing, listing and answering parents' notes; every write audited."""

    max_note = MAX_NOTE

    def __init__(self, control: Control):
        self._control = control

    async def children_of(self, parent: str) -> list[NoteChild]:
        """The children ``parent`` may write about: those of their profile, and those the
        roster links to their account (take-home devices)."""
        profile = await self._control.store.get_parent_profile(parent)
        children = [NoteChild(name, group) for name, group in (profile.children if profile else ())]
        for child in await self._control.home_profiles.children_of(parent):
            if NoteChild(child.name, child.group) not in children:
                children.append(NoteChild(child.name, child.group))
        return children

    async def send(self, parent: str, child_key: str, place: str, site: str, text: str) -> ParentNote:
        """Store ``parent``'s note about one of their children; ValueError (nothing stored)
        for a child not theirs, an unknown place, a bad site or an empty or long note."""
        child = next((c for c in await self.children_of(parent) if c.key == child_key), None)
        if child is None:
            raise ValueError(i18n.N_("Please choose one of your children."))
        where = next((p for p in PLACES if p == place), None)
        if where is None:
            raise ValueError(i18n.N_("Please say whether it happened at home or at school."))
        text = text.strip()
        if not text:
            raise ValueError(i18n.N_("Please write what the note is about."))
        if len(text) > MAX_NOTE:
            raise ValueError(i18n.N_("A note can be at most 1000 characters long."))
        store = self._control.store
        note = await store.add_parent_note(parent, child.name, child.group, where, site_of(site), text)
        await store.audit(parent, "parent.note", child.name, {"group": child.group, "place": where, "id": note.id})
        return note

    async def of_parent(self, parent: str) -> list[ParentNote]:
        """``parent``'s own notes, newest first, with any answers."""
        return await self._control.store.list_parent_notes(parent=parent, limit=SHOWN)

    async def for_staff(self, user: User, *, answered: bool) -> list[ParentNote]:
        """The notes ``user`` may see (``staff_scope``), answered or waiting, newest first."""
        scope = staff_scope(user)
        return await self._control.store.list_parent_notes(groups=scope, answered=answered, limit=SHOWN)

    async def answer(self, user: User, note_id: int, text: str) -> ParentNote:
        """``user``'s answer to a waiting note they may see; ValueError in a plain sentence
        otherwise (nothing stored)."""
        text = text.strip()
        if not text:
            raise ValueError("Write an answer before sending it.")
        if len(text) > MAX_ANSWER:
            raise ValueError(f"An answer can be at most {MAX_ANSWER} characters long.")
        waiting = await self._control.store.list_parent_notes(
            groups=staff_scope(user), answered=False, limit=1, before_id=note_id + 1
        )
        if not waiting or waiting[0].id != note_id:
            raise ValueError("That note has been answered already or is not one of yours.")
        answered = await self._control.store.answer_parent_note(note_id, text, user.name)
        if answered is None:
            raise ValueError("That note has been answered already or is not one of yours.")
        await self._control.store.audit(user.name, "parent.note.answer", answered.child, {"group": answered.group, "id": note_id})
        return answered
