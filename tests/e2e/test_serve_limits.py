"""Issue 22 as a new user meets it: `broadcast serve` with nothing configured (SQLite, the bundled Redis 6.2).
Sign-in throttling and the /lapor limit work, a forged X-Forwarded-For changes nothing, the demo password and the
signing secret are generated (and reused on the next start), and signing out ends the session on the server."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import demo_password, start_serve, stop_serve

pytestmark = pytest.mark.e2e


def _token(base: str) -> str:
    page = httpx.get(f"{base}/lapor")
    assert page.status_code == 200
    return page.text.split('name="token" value="')[1].split('"')[0]


def test_limits_secrets_and_sessions_on_the_embedded_default(serve_factory, record):
    served = serve_factory()
    base = served.base
    password = demo_password(base)
    assert password in served.output()  # the generated demo password is printed
    data_dir = served.log.parent / "broadcast-data"
    assert (data_dir / "secret_key").stat().st_mode & 0o777 == 0o600
    assert "latihan-demo-2026" not in served.output()
    ready = httpx.get(f"{base}/readyz", timeout=10).json()
    assert ready["checks"]["limits"]["ok"], ready

    # Sign-in: five wrong passwords from this address, then 429 for this account from here, even the right one,
    # and even claiming another address in X-Forwarded-For.
    login = f"{base}/api/v1/auth/login"
    wrong = [httpx.post(login, json={"username": "op.palu", "password": "salah-sandi-1"}).status_code for _ in range(8)]
    right = httpx.post(login, json={"username": "op.palu", "password": password})
    spoofed = httpx.post(login, json={"username": "op.palu", "password": password},
                         headers={"X-Forwarded-For": "198.51.100.23"})
    retry_after = right.headers.get("retry-after", "")
    ok = (
        wrong == [401] * 5 + [429] * 3
        and right.status_code == 429
        and retry_after.isdigit()
        and int(retry_after) > 0
        and spoofed.status_code == 429
    )
    record("limits", "8 wrong sign-ins on `broadcast serve` (bundled Redis), then the right one",
           "5 x 401, then 429" if ok else f"{wrong}, right {right.status_code}, spoofed {spoofed.status_code}",
           ok=ok, tries=len(wrong) + len([right, spoofed]))
    assert wrong == [401] * 5 + [429] * 3, wrong
    assert right.status_code == 429 and int(right.headers["retry-after"]) > 0
    assert spoofed.status_code == 429

    # /lapor: the default 10 reports per address per 10 minutes, X-Forwarded-For rotation included.
    tokens = [_token(base) for _ in range(13)]
    time.sleep(3.2)  # the form's minimum fill time (3 s by default)
    codes = [httpx.post(f"{base}/lapor", data={"text": f"Banjir di jalan nomor {i}", "token": t},
                        headers={"X-Forwarded-For": f"10.20.0.{i}"}).status_code for i, t in enumerate(tokens)]
    ok = codes == [200] * 10 + [429] * 3
    record("limits", "13 reports from one address on `broadcast serve` (bundled Redis)",
           "10 taken, then 429" if ok else f"UNLIMITED {codes}", ok=ok, tries=len(codes))
    assert codes == [200] * 10 + [429] * 3, codes

    # Signing out ends the token on the server.
    r = httpx.post(login, json={"username": "analis", "password": password})
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert httpx.post(f"{base}/api/v1/auth/logout", headers=headers).status_code == 204
    assert httpx.get(f"{base}/api/v1/auth/me", headers=headers).status_code == 401
    r = httpx.post(login, json={"username": "admin", "password": password})
    kept = {"Authorization": f"Bearer {r.json()['access_token']}"}

    # A second start reuses the generated secret (sessions survive a restart) and prints the demo logins again.
    port = int(base.rsplit(":", 1)[1])
    stop_serve(served)
    again = start_serve(served.log.parent, port)
    try:
        assert password in again.output()
        assert httpx.get(f"{again.base}/api/v1/auth/me", headers=kept).status_code == 200
    finally:
        stop_serve(again)
