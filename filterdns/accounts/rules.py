"""What account names, parent emails and passwords must be, as plain sentences saying
what is wrong (the console shows them in forms, ``filterdns user`` on the terminal)."""

from __future__ import annotations

import re

ROLES = ("admin", "teacher", "viewer", "parent")
MIN_PASSWORD_LENGTH = 12
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# Long enough to pass the length rule, yet among the first tried by anyone guessing.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012", "1234567890123", "12345678901234", "123123123123", "111111111111",
        "000000000000", "password1234", "password12345", "password123!", "passwordpassword",
        "qwertyuiop12", "qwertyuiop123", "qwertyqwerty", "1q2w3e4r5t6y", "1qaz2wsx3edc",
        "abcdefghijkl", "abc123abc123", "iloveyou1234", "letmein12345", "welcome12345",
        "welcome2school", "changeme1234", "administrator", "administrator1", "adminadmin12",
        "schoolschool", "school123456", "teacher12345", "filterdns123", "filterdns1234",
        "trustno1trustno1", "football1234", "monkey123456", "sunshine1234", "princess1234",
        "superman1234", "baseball1234", "dragon123456", "mustang12345", "correcthorsebatterystaple",
    }
)  # fmt: skip


def password_problems(password: str, user_name: str) -> list[str]:
    """Why ``password`` is not acceptable for ``user_name`` (empty: it is)."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    lowered = password.lower()
    if user_name and user_name.lower() in lowered:
        problems.append("a password must not contain the user name")
    if lowered in COMMON_PASSWORDS or len(set(lowered)) < 4:
        problems.append("that password is one of the first an attacker tries")
    return problems


def user_name_problem(name: str) -> str | None:
    if not USER_NAME.fullmatch(name):
        return "a user name is 1 to 64 letters, digits and . _ @ - (starting with a letter or digit)"
    return None


def email_problem(email: str) -> str | None:
    """Why ``email`` cannot name a parent account (parents log in with their address)."""
    if not EMAIL.fullmatch(email):
        return f"'{email}' is not an email address"
    problem = user_name_problem(email)
    return f"'{email}' cannot be a login name: {problem}" if problem else None
