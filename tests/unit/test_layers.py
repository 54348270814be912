"""`broadcast` may import `channels` and `geo`, never the reverse (STYLE.md §1)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["channels", "geo", "templates"])
def test_lower_layers_never_import_the_application(package):
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / package).rglob("*.py")
        for name in imported_modules(path)
        if name == "broadcast" or name.startswith("broadcast.")
    ]
    assert offenders == []


def test_geo_never_imports_channels():
    offenders = [str(p) for p in (ROOT / "geo").rglob("*.py")
                 if any(n == "channels" or n.startswith("channels.") for n in imported_modules(p))]
    assert offenders == []
