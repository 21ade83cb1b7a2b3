"""Where the templates and static files live, for the console and for the mails sent by
the reports: ``admin_ui/`` beside the package, in a checkout and when installed.

It is its own module so that mail rendering (``reports``) finds the templates without
importing the web console."""

from __future__ import annotations

from pathlib import Path

UI_DIR = Path(__file__).resolve().parents[1] / "admin_ui"
TEMPLATES_DIR = UI_DIR / "templates"
STATIC_DIR = UI_DIR / "static"
