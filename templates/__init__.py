"""Jinja2 templates: hazard messages (messages/) and HTML pages (pages/)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES_DIR = Path(__file__).parent


@lru_cache(maxsize=1)
def message_env() -> Environment:
    """Plain-text message templates; a missing variable is an error, never a blank."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR / "messages"),
        autoescape=False,  # noqa: S701 - SMS and posts are plain text, never HTML
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


@lru_cache(maxsize=1)
def page_env() -> Environment:
    """HTML page templates, autoescaped."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR / "pages"),
        autoescape=select_autoescape(["html", "xml"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
