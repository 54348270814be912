"""The README and docs/ stay true: links resolve, every `broadcast …` command, route and BROADCAST_ variable they
mention exists, every setting is documented, and docs/architecture.md lists exactly the packages on disk.

What counts as a mention: inline code spans and fenced code blocks (prose is free). A route is a code span that
starts with `/` (or `METHOD /`), or a link to the local server (http://127.0.0.1:8000/…, localhost:8000/…).
Placeholders `<id>`, `{id}`, `…` and `*` stand for one path segment (or, at the end, anything); a query string is
ignored. Markdown files are found anew on every run, so documents added later are checked the same way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
ARCHITECTURE = ROOT / "docs" / "architecture.md"
# Where packages live, and the heading in docs/architecture.md whose list names each of them with its job.
PACKAGE_ROOTS = ("broadcast", "channels", "geo", "templates")
PACKAGE_HEADING = "## Packages"
# Absolute paths in the docs that are not routes of the app (files on a server, problem type URIs).
NOT_ROUTES = ("/etc/", "/problems/", "/var/", "/usr/")
# Environment variables that are not settings: the test suite's and CI's own, each read somewhere in this tree.
NOT_SETTINGS = {
    "BROADCAST_TEST_REDIS_URL",
    "BROADCAST_TEST_PG_URL",
    "BROADCAST_TEST_NOW",
    "BROADCAST_RELIABILITY_JSON",
    "BROADCAST_FAULT_RECIPIENTS",
}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _code(text: str) -> Iterator[str]:
    """Inline code spans and the lines of fenced code blocks."""
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            yield line
        else:
            yield from re.findall(r"`([^`\n]+)`", line)


def _prose(text: str) -> str:
    """The text without fenced code blocks (links inside code are not links)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    text = "".join(c for c in unicodedata.normalize("NFKC", text) if c.isalnum() or c in " -")
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(_read(path)).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            slug = _slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _links(path: Path) -> Iterator[str]:
    for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", _prose(_read(path))):
        yield target
    for target in re.findall(r"^\[[^\]]+\]:\s*(\S+)", _read(path), flags=re.M):
        yield target


def test_there_are_docs() -> None:
    assert ROOT / "README.md" in DOCS
    assert (ROOT / "docs" / "README.md") in DOCS
    assert len(DOCS) >= 3


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in _links(doc):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {_rel(dest)}")
    assert not broken, f"{_rel(doc)}: broken links:\n" + "\n".join(broken)


@cache
def _cli() -> Any:
    import typer.main

    from broadcast.cli import app

    return typer.main.get_command(app)


def _command_problem(words: list[str], options: list[str]) -> str | None:
    node = _cli()
    used: list[str] = []
    for word in words:
        subs = getattr(node, "commands", None)
        if not subs or word not in subs:
            break
        node, used = subs[word], [*used, word]
    if not used:
        return f"no command {words[0]!r}" if words else "no command named"
    if getattr(node, "commands", None):
        return f"'broadcast {' '.join(used)}' is a group: name one of its commands"
    known = {o for p in node.params for o in (*p.opts, *p.secondary_opts)}
    unknown = [o for o in options if o not in known]
    return f"'broadcast {' '.join(used)}' has no option {', '.join(unknown)}" if unknown else None


def _command_mentions(text: str) -> Iterator[tuple[str, list[str], list[str]]]:
    for span in _code(text):
        for part in re.split(r"&&|\|\||;|\||\$\(|\)", span):
            m = re.search(r"(?:^|\s)broadcast\s+([a-z][a-z-]*(?:\s+[a-z][a-z-]*)*)(.*)", part)
            if m:
                words = m.group(1).split()
                yield part.strip(), words, re.findall(r"(?<![\w-])--[a-z][a-z-]*", m.group(2))


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_commands_exist(doc: Path) -> None:
    wrong = []
    for span, words, options in _command_mentions(_read(doc)):
        problem = _command_problem(words, options)
        if problem:
            wrong.append(f"`{span}`: {problem}")
    assert not wrong, f"{_rel(doc)}: commands the CLI does not have:\n" + "\n".join(wrong)


@cache
def _routes() -> tuple[list[tuple[str, list[re.Pattern[str]]]], list[str]]:
    """(method, one pattern per path segment) for every endpoint, and the mounted prefixes (static files)."""
    from starlette.routing import Mount

    from broadcast.api.access import iter_endpoints
    from broadcast.api.app import create_app

    app = create_app()
    routes = []
    for method, path, _route in iter_endpoints(app):
        segments = [re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(s))) for s in path.strip("/").split("/")]
        routes.append((method, segments))
    mounts = [r.path for r in app.routes if isinstance(r, Mount)]
    return routes, mounts


def _route_mentions(text: str) -> Iterator[tuple[str | None, str]]:
    for span in _code(text):
        m = re.match(r"\s*(?:(GET|POST|PUT|PATCH|DELETE)\s+)?(/[^\s`'\"(),]*)", span)
        if m:
            yield m.group(1), m.group(2)
    for m in re.finditer(r"(?:127\.0\.0\.1|localhost):8000(/[^\s>)`'\"]*)", text):
        yield None, m.group(1)


def _route_problem(method: str | None, path: str) -> str | None:
    path = path.split("?")[0].split("#")[0].rstrip(".,:;")
    if path in ("", "/") or path.startswith("//") or path.startswith(NOT_ROUTES):
        return None  # "/" is the public home page; the others are not paths of the app
    routes, mounts = _routes()
    if any(path == m or path.startswith(m + "/") for m in mounts):
        return None
    # Placeholders stand for (part of) a segment; a trailing … or * stands for the rest of the path.
    prefix = path.endswith(("…", "*"))
    parts = re.sub(r"<[^>]+>|\{[^}]+\}|…|\*", "X", path.rstrip("…*").rstrip("/")).strip("/").split("/")
    for m, segments in routes:
        if method and m != method:
            continue
        if (len(parts) == len(segments) or (prefix and len(parts) <= len(segments))) and all(
            seg.fullmatch(part) or part == "X" for part, seg in zip(parts, segments, strict=False)
        ):
            return None
    return f"no {method} route" if method else "no such route"


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_routes_exist(doc: Path) -> None:
    wrong = []
    for method, path in _route_mentions(_read(doc)):
        problem = _route_problem(method, path)
        if problem:
            wrong.append(f"{method + ' ' if method else ''}{path}: {problem}")
    assert not wrong, f"{_rel(doc)}: routes the app does not serve:\n" + "\n".join(wrong)


@cache
def _settings() -> tuple[frozenset[str], frozenset[str]]:
    """(every variable Settings reads, the ones a document must name: all but the nested models' own names)."""
    from pydantic import BaseModel

    from broadcast.settings import Settings

    names, groups = set(), set()

    def walk(model: type[BaseModel], prefix: str) -> None:  # nested models at any depth (TWILIO__WHATSAPP__…)
        for name, field in model.model_fields.items():
            var = f"{prefix}{name.upper()}"
            names.add(var)
            inner = field.annotation
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                groups.add(var)
                walk(inner, f"{var}__")

    walk(Settings, "BROADCAST_")
    return frozenset(names), frozenset(names - groups)


def _variables(text: str) -> set[str]:
    return set(re.findall(r"\bBROADCAST_[A-Z0-9_]*[A-Z0-9]", text))


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_variables_are_settings(doc: Path) -> None:
    wrong = sorted(v for v in _variables(_read(doc)) - NOT_SETTINGS if v not in _settings()[0])
    assert not wrong, f"{_rel(doc)}: variables that are not settings (broadcast/settings.py): " + ", ".join(wrong)


def test_test_variables_are_read_somewhere() -> None:
    sources = "".join(_read(p) for d in ("tests", "scripts", "benchmarks") for p in (ROOT / d).rglob("*.py"))
    sources += _read(ROOT / ".ci" / "run") if (ROOT / ".ci" / "run").exists() else ""
    assert sorted(v for v in NOT_SETTINGS if v not in sources) == []


def test_every_setting_is_documented() -> None:
    documented = set().union(*(_variables(_read(d)) for d in DOCS))
    missing = sorted(_settings()[1] - documented)
    assert not missing, "settings no document names (add them to docs/configuration.md): " + ", ".join(missing)


def _packages_on_disk() -> set[str]:
    found = set()
    for top in PACKAGE_ROOTS:
        for init in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add(_rel(init.parent) + "/")
    return found


def _packages_listed() -> dict[str, str]:
    text = _read(ARCHITECTURE)
    assert PACKAGE_HEADING in text.splitlines(), f"docs/architecture.md needs a '{PACKAGE_HEADING}' section"
    section = text.split(PACKAGE_HEADING + "\n", 1)[1].split("\n## ", 1)[0]
    return {
        m.group(1): m.group(2).strip()
        for m in re.finditer(r"^\s*[-*]\s+`([^`]+/)`\s*(?:[:—–-]\s*)?(.*)$", section, flags=re.M)
    }


def test_architecture_lists_every_package_with_its_job() -> None:
    listed = _packages_listed()
    on_disk = _packages_on_disk()
    assert sorted(on_disk - set(listed)) == [], "packages on disk missing from docs/architecture.md"
    assert sorted(set(listed) - on_disk) == [], "docs/architecture.md lists packages that are not on disk"
    assert sorted(p for p, job in listed.items() if len(job.split()) < 3) == [], "each package needs its job"


def test_readme_fits_one_screen() -> None:
    text = _read(ROOT / "README.md")
    assert len(text.splitlines()) <= 60
    assert "docs/README.md" in text


def test_readme_keeps_the_ci_test_command() -> None:
    """.ci/run runs the first bash block after '## Test it' (keep the heading and the block)."""
    text = _read(ROOT / "README.md")
    after = text.split("\n## Test it\n", 1)[1]
    block = re.search(r"```bash\n(.*?)\n```", after, flags=re.S)
    assert block is not None and "pytest" in block.group(1)
