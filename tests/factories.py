"""Builders for test data: users of each role and alert payloads."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from broadcast.subscribers import service as subscribers
from broadcast.users import service as users
from broadcast.users.models import Role, User

PASSWORD = "correct-horse-battery"


def make_user(session: Session, username: str, role: Role, jurisdiction: str | None = None) -> User:
    return users.create_user(session, username=username, full_name=username.title(), password=PASSWORD,
                             role=role, jurisdiction=jurisdiction, actor_id=None)


def make_team(session: Session) -> dict[str, User]:
    """An operator and approver for Palu, an operator for Grobogan, an admin and an analyst."""
    team = {
        "operator": make_user(session, "op.palu", Role.OPERATOR, "72.71"),
        "approver": make_user(session, "apv.sulteng", Role.APPROVER, "72"),
        "operator_grobogan": make_user(session, "op.grobogan", Role.OPERATOR, "33.15"),
        "approver_grobogan": make_user(session, "apv.grobogan", Role.APPROVER, "33.15"),
        "admin": make_user(session, "admin", Role.ADMIN, None),
        "analyst": make_user(session, "analis", Role.ANALYST, None),
    }
    session.flush()
    return team


def make_subscribers(session: Session) -> dict[str, list[int]]:
    """Four in Kota Palu (one English), two in Donggala (next door), one in Grobogan."""
    where = {
        "palu": ["72.71.01.1004", "72.71.01.1006", "72.71.02.1005", "72.71"],
        "donggala": ["72.03.04.2001", "72.03"],
        "grobogan": ["33.15.01.2001"],
    }
    out: dict[str, list[int]] = {}
    n = 0
    for area, codes in where.items():
        out[area] = []
        for code in codes:
            n += 1
            sub = subscribers.add_subscriber(session, phone=f"+62812990{n:05d}", admin_code=code,
                                             language="en" if n == 4 else "id")
            out[area].append(sub.id)
    session.flush()
    return out


def seed(engine: Any) -> tuple[dict[str, User], dict[str, list[int]]]:
    """The factory team and subscribers, committed to `engine`'s database."""
    from broadcast.db import session_scope

    with session_scope(engine) as s:
        return make_team(s), make_subscribers(s)


def alert_payload(status: str = "Actual", codes: list[str] | None = None, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "status": status,
        "channels": ["sms", "social", "web"],
        "infos": [
            {
                "language": "id-ID", "category": "Met", "event": "Banjir", "urgency": "Immediate",
                "severity": "Severe", "certainty": "Likely", "headline": "Banjir di Kota Palu",
                "description": "Hujan lebat menyebabkan sungai meluap.",
                "instruction": "Segera mengungsi ke tempat yang lebih tinggi.",
            },
            {
                "language": "en-US", "category": "Met", "event": "Flood", "urgency": "Immediate",
                "severity": "Severe", "certainty": "Likely", "headline": "Flooding in Palu City",
                "description": "Heavy rain made the river overflow.",
                "instruction": "Move to higher ground now.",
            },
        ],
        "areas": [{"area_desc": "Kota Palu", "geocodes": codes or ["72.71"]}],
    }
    payload.update(overrides)
    return payload


def login_form(client: Any, username: str, password: str = PASSWORD) -> dict[str, str]:
    """The /masuk form fields, with the login CSRF token of a fresh GET /masuk (its cookie lands in `client`)."""
    import re

    page = client.get("/masuk")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None, page.text[:300]
    return {"username": username, "password": password, "csrf": token.group(1)}


class SendRecorder:
    """Stands in for the Celery app where only what would be sent matters (`broadcast.events.send_committed`):
    records (task, args, queue) of each send_task instead of reaching a broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any], str | None]] = []

    def send_task(self, name: str, args: list[Any], queue: str | None = None, **_: Any) -> None:
        self.sent.append((name, args, queue))
