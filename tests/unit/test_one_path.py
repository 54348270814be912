"""One path per concern (issue 19): things the service once did in two places stay done in one."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("broadcast", "channels", "geo", "templates")


def _modules() -> dict[str, ast.Module]:
    out = {}
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            out[path.relative_to(ROOT).as_posix()] = ast.parse(path.read_text(encoding="utf-8"))
    return out


MODULES = _modules()


def _where(predicate: type[ast.AST] | tuple[type[ast.AST], ...], name: str) -> list[str]:
    return [
        f"{path}:{getattr(node, 'lineno', 0)}"
        for path, tree in MODULES.items()
        for node in ast.walk(tree)
        if isinstance(node, predicate) and getattr(node, "name", None) == name
    ]


def _called_name(call: ast.Call) -> str:
    func = call.func
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def test_one_redis_client_factory() -> None:
    builds = [
        f"{path}:{node.lineno} {_called_name(node)}"
        for path, tree in MODULES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and _called_name(node).split(".")[-2:] in (["Redis", "from_url"], ["Redis"], ["StrictRedis"])
        and path != "broadcast/redisclient.py"
    ]
    assert builds == [], "build Redis clients with broadcast.redisclient.redis_client"


def test_one_client_address_helper() -> None:
    found = _where((ast.FunctionDef, ast.AsyncFunctionDef), "client_ip")
    assert len(found) == 1 and found[0].startswith("broadcast/api/security.py:"), found


def test_one_invalid_transition_error() -> None:
    found = _where(ast.ClassDef, "InvalidTransition")
    assert len(found) == 1 and found[0].startswith("broadcast/errors.py:"), found


def test_one_geojson_walk() -> None:
    tree = MODULES["geo/areas.py"]
    walkers = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any(isinstance(c, ast.Constant) and c.value in ("Feature", "GeometryCollection") for c in ast.walk(node))
    ]
    assert walkers == ["_geojson"]


def test_one_event_stream_shape() -> None:
    """Every server-sent event stream is framed and answered by broadcast.api.sse."""
    found = sorted(
        {
            path
            for path, tree in MODULES.items()
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and ("text/event-stream" in node.value or node.value.startswith("event: "))
        }
        | {
            path
            for path, tree in MODULES.items()
            for node in ast.walk(tree)
            if isinstance(node, ast.JoinedStr)
            and node.values
            and isinstance(node.values[0], ast.Constant)
            and str(node.values[0].value).startswith("event: ")
        }
    )
    assert found == ["broadcast/api/sse.py"]


def _calls_to(name: str) -> list[str]:
    return [
        f"{path}:{node.lineno}"
        for path, tree in MODULES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _called_name(node).split(".")[-1] == name
    ]


def test_one_way_to_create_imported_alerts() -> None:
    """CAP documents (API and CLI) and BMKG (CLI and poller) all store their drafts through create_imported: it
    alone writes the `alert.import` audit entry, and every intake module reaches it."""
    audited = [
        f"{path}:{node.lineno}"
        for path, tree in MODULES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.keyword) and node.arg == "action"
        and isinstance(node.value, ast.Constant) and node.value.value == "alert.import"
    ]
    assert len(audited) == 1 and audited[0].startswith("broadcast/alerts/service.py:"), audited
    writer = next(
        node for node in ast.walk(MODULES["broadcast/alerts/service.py"])
        if isinstance(node, ast.FunctionDef) and node.name == "create_imported"
    )
    assert writer.lineno <= int(audited[0].split(":")[1]) <= (writer.end_lineno or 0)
    callers = sorted({c.split(":")[0] for c in _calls_to("create_imported")})
    assert callers == ["broadcast/intake/bmkg.py", "broadcast/intake/cap_documents.py"], callers
    for path in ("broadcast/intake/bmkg.py", "broadcast/intake/cap_documents.py"):
        assert not any(
            isinstance(node, ast.Call) and _called_name(node).split(".")[-1] in ("record", "add", "Alert")
            for node in ast.walk(MODULES[path])
        ), f"{path} writes rows or audit entries itself"


def test_one_feed_route() -> None:
    """Atom, exercise Atom, RSS and JSON feeds are one endpoint made by one factory."""
    from broadcast.web.public import router

    feeds = {"/feed/atom.xml", "/feed/latihan.xml", "/feed/rss.xml", "/api/public/alerts"}
    routes = [r for r in router.routes if getattr(r, "path", None) in feeds]
    assert sorted(r.path for r in routes) == sorted(feeds)  # type: ignore[attr-defined]
    assert len({r.endpoint.__code__ for r in routes}) == 1  # type: ignore[attr-defined]


def test_no_module_name_means_two_things_in_alerts_and_geo() -> None:
    """A module name names one thing: alerts' own modules never shadow geo's (areas, reach, geometry, ...)."""

    def stems(folder: str) -> set[str]:
        return {p.stem for p in (ROOT / folder).glob("*.py") if p.stem != "__init__"}

    assert stems("broadcast/alerts") & stems("geo") == set()


def _triage_writes(func: ast.FunctionDef) -> bool:
    """Whether a function writes a triage field (notes, assignee) or sets fields by name."""
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and _called_name(node) == "setattr":
            return True
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) else []
        )
        if any(isinstance(t, ast.Attribute) and t.attr in ("notes", "assignee_id") for t in targets):
            return True
    return False


TRIAGE = ("report.state", "report.triage", "incident.state", "incident.triage")


def test_one_triage_transition() -> None:
    """A report's or an incident's triage (state moves, assignee, notes) is changed by
    broadcast.reports.triage.transition alone: it is the one function of the reports domain that writes those
    fields, and no audit entry of a triage step is recorded anywhere else."""
    writers = sorted(
        f"{path}:{func.name}"
        for path, tree in MODULES.items()
        if path.startswith("broadcast/reports/")
        for func in ast.walk(tree)
        if isinstance(func, ast.FunctionDef) and _triage_writes(func)
    )
    assert writers == ["broadcast/reports/triage.py:transition"], writers
    steps = sorted(
        f"{path}:{node.lineno}"
        for path, tree in MODULES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _called_name(node).endswith("record")
        for kw in node.keywords
        if kw.arg == "action" and isinstance(kw.value, ast.Constant) and kw.value.value in TRIAGE
    )
    assert steps == [], "audit triage steps through broadcast.reports.triage.transition"
