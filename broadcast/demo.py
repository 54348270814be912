"""Demo data for a fresh embedded install: one user per role and subscribers in Palu, Sleman, Grobogan.

The demo users share one password generated on first load (never fixed in the source) and kept, mode 0600, in
the data dir, so `broadcast serve` can print the logins on every start while the accounts still use it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcast.subscribers import service as subscribers
from broadcast.subscribers.models import Subscriber
from broadcast.users import service as users
from broadcast.users.models import Role, User
from broadcast.users.security import verify_password
from geo import gazetteer

PASSWORD_FILE = "demo-password"  # noqa: S105 - a file name


def demo_password(data_dir: Path) -> str:
    """The demo accounts' password: generated (random, 16 characters) into data_dir on first use, then reused."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PASSWORD_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(f"latihan-{secrets.token_urlsafe(12)}\n")
    return path.read_text().strip()


def stored_demo_password(data_dir: Path) -> str | None:
    """The demo password kept in data_dir, if any was generated."""
    try:
        return (data_dir / PASSWORD_FILE).read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class DemoUser:
    username: str
    full_name: str
    role: Role
    jurisdiction: str | None


DEMO_USERS = (
    DemoUser("admin", "Admin Nasional", Role.ADMIN, None),
    DemoUser("analis", "Analis Pusdalops", Role.ANALYST, None),
    DemoUser("op.palu", "Operator BPBD Kota Palu", Role.OPERATOR, "72.71"),
    DemoUser("apv.sulteng", "Kalaksa BPBD Sulawesi Tengah", Role.APPROVER, "72"),
    DemoUser("op.sleman", "Operator BPBD Sleman", Role.OPERATOR, "34.04"),
    DemoUser("apv.sleman", "Kalaksa BPBD Sleman", Role.APPROVER, "34.04"),
    DemoUser("op.grobogan", "Operator BPBD Grobogan", Role.OPERATOR, "33.15"),
    DemoUser("apv.grobogan", "Kalaksa BPBD Grobogan", Role.APPROVER, "33.15"),
)
# Subscribers per kabupaten/kota: spread over its first desa/kelurahan, fictional numbers.
DEMO_AREAS = {"72.71": ("72", 8), "34.04": ("34", 6), "33.15": ("33", 6)}


def is_empty(session: Session) -> bool:
    """True when the database has no users yet."""
    return not session.scalar(select(func.count()).select_from(User))


def _desa_under(code: str, n: int) -> list[str]:
    out: list[str] = []
    for kec in sorted(gazetteer.children(code), key=lambda p: p.kode):
        out += [p.kode for p in sorted(gazetteer.children(kec.kode), key=lambda p: p.kode)[:2]]
        if len(out) >= n:
            break
    return out[:n]


def users_with_password(session: Session, password: str) -> list[DemoUser]:
    """The demo users (active) whose password is still `password`."""
    out = []
    for u in DEMO_USERS:
        user = users.find_user_by_username(session, username=u.username)
        if user is not None and user.is_active and verify_password(user.password_hash, password):
            out.append(u)
    return out


def load_demo(session: Session, *, password: str) -> list[DemoUser]:
    """Create the demo users (with `password`) and subscribers that are missing (safe to run twice)."""
    created = []
    for u in DEMO_USERS:
        if users.find_user_by_username(session, username=u.username) is None:
            users.create_user(
                session,
                username=u.username,
                full_name=u.full_name,
                password=password,
                role=u.role,
                jurisdiction=u.jurisdiction,
                actor_id=None,
            )
            created.append(u)
    for area_no, (kab, (_prov, n)) in enumerate(DEMO_AREAS.items(), start=1):
        for i, desa in enumerate(_desa_under(kab, n)):
            phone = f"+62812{area_no:02d}{i:06d}"
            if session.scalar(select(Subscriber.id).where(Subscriber.phone == phone)) is None:
                subscribers.add_subscriber(session, phone=phone, admin_code=desa, language="en" if i % 4 == 3 else "id")
    return created
