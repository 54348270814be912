"""The user-facing path must run real Celery workers: no eager mode anywhere in product code."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_task_always_eager_in_product_code():
    offenders = []
    for pkg in ("broadcast", "channels", "geo", "templates"):
        for path in (ROOT / pkg).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if "always_eager" in text or "task_always_eager" in text:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
