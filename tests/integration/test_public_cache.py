"""Public pages and feeds rendered once per change (broadcast.web.pagecache): the cached page is the page, every
state change is seen at once by every app instance sharing the database, ETag/304 and headers, bounded memory."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine
from fastapi.testclient import TestClient

from broadcast.alerts import service
from broadcast.alerts.models import Alert, MsgType
from broadcast.alerts.schemas import AlertCreate
from broadcast.api.abuse import check_form_token, form_token
from broadcast.api.app import create_app
from broadcast.db import session_scope, utcnow
from broadcast.dispatch.plan import plan_alert
from broadcast.settings import Settings
from broadcast.users.models import User
from broadcast.web.pagecache import Entry, Lru, PublicPageCache
from tests.factories import alert_payload, make_team

pytestmark = [pytest.mark.integration, pytest.mark.clock]
TOKEN = re.compile(r'name="token" value="([^"]+)"')


def _team(engine):
    with session_scope(engine) as s:
        return {u.username: u for u in s.scalars(sa.select(User))}


def publish(engine, status="Actual", headline=None, **overrides):
    team = _team(engine)
    with session_scope(engine) as s:
        payload = alert_payload(status, **overrides)
        if headline:
            payload["infos"][0]["headline"] = headline
        alert = service.create_alert(s, data=AlertCreate(**payload), author=team["op.palu"], sender="bpbd@palu")
        service.submit_alert(s, alert_id=alert.id, actor=team["op.palu"])
        service.approve_alert(s, alert_id=alert.id, approver=team["apv.sulteng"], production=True)
        plan_alert(s, alert_id=alert.id)
        return alert.id, alert.identifier, alert.verify_code


def follow_up(engine, original_id, msg_type, headline=None):
    team = _team(engine)
    with session_scope(engine) as s:
        follow = service.create_follow_up(s, original_id=original_id, actor=team["op.palu"], msg_type=msg_type,
                                          reason="Air sudah surut" if msg_type is MsgType.CANCEL else None)
        if headline:
            follow.infos[0].headline = headline
        service.submit_alert(s, alert_id=follow.id, actor=team["op.palu"])
        service.approve_alert(s, alert_id=follow.id, approver=team["apv.sulteng"], production=True)
        plan_alert(s, alert_id=follow.id)
        return follow.identifier


def settings_for(db_url, **overrides):
    return Settings(environment="test", database_url=db_url, secret_key="k" * 20,
                    public_base_url="https://peringatan.example.id", check_code_limit_per_ip=1000, **overrides)


def cache_of(client) -> PublicPageCache:
    app = client.app.middleware_stack
    while not isinstance(app, PublicPageCache):
        app = app.app
    return app


@pytest.fixture
def apps(db_url, engine, redis_url):
    """Two app instances with the cache (two processes or hosts sharing the database) and one without."""
    with session_scope(engine) as s:
        make_team(s)
    with (TestClient(create_app(settings_for(db_url))) as one,
          TestClient(create_app(settings_for(db_url))) as two,
          TestClient(create_app(settings_for(db_url, public_cache=False))) as plain):
        yield one, two, plain


def _untokened(text):
    return TOKEN.sub('name="token" value=""', text)


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_the_cached_page_is_the_page(apps, engine):
    cached, _, plain = apps
    _, ident, code = publish(engine, codes=["72.71"])
    publish(engine, "Exercise", headline="Latihan banjir")
    paths = ["/", "/?lang=en", f"/peringatan/{ident}", f"/peringatan/{ident}?lang=en",
             f"/peringatan/{ident}/area.geojson", f"/cap/{ident}.xml", "/wilayah/72.71", "/wilayah/72.71?lang=en",
             "/feed/atom.xml", "/feed/atom.xml?wilayah=72.71&severity=Severe", "/feed/latihan.xml", "/feed/rss.xml",
             "/api/public/alerts?status=all", f"/cek?kode={code}", "/cek?kode=ZZZZ99", "/cek", "/cek?lang=en"]
    cache = cache_of(cached)
    for path in paths:
        first, again, truth = cached.get(path), cached.get(path), plain.get(path)
        assert first.status_code == again.status_code == truth.status_code == 200, path
        assert first.headers["content-type"] == truth.headers["content-type"], path
        if path.startswith("/cek"):
            assert _untokened(first.text) == _untokened(again.text) == _untokened(truth.text), path
        else:
            assert first.content == again.content == truth.content, path
    assert cache.renders == len(paths)  # each rendered once, the second request of each came from the cache
    assert "Latihan banjir" in cached.get("/feed/latihan.xml").text


@pytest.mark.parametrize("dbs", ["sqlite", "postgresql"], indirect=True)
def test_publish_update_and_cancel_are_seen_at_once_by_every_instance(apps, engine):
    one, two, _ = apps
    original_id, ident, code = publish(engine, headline="Banjir pertama")
    pages = [f"/peringatan/{ident}", "/", "/wilayah/72.71", "/feed/atom.xml", f"/cek?kode={code}"]
    for client in (one, two):
        assert "DIPERBARUI" not in client.get(f"/peringatan/{ident}").text
        assert all("Banjir pertama" in client.get(p).text for p in pages)
    update = follow_up(engine, original_id, MsgType.UPDATE, headline="Banjir diperbarui")
    for client in (one, two):
        assert "DIPERBARUI" in client.get(f"/peringatan/{ident}").text
        assert update in client.get("/feed/atom.xml").text and update in client.get("/").text
    with session_scope(engine) as s:
        update_id = s.scalar(sa.select(Alert.id).where(Alert.identifier == update))
    follow_up(engine, update_id, MsgType.CANCEL)
    for client in (one, two):
        page = client.get(f"/peringatan/{ident}").text
        assert "DIBATALKAN" in page and "Air sudah surut" in page
        assert update not in client.get("/").text
        assert "DIBATALKAN" in client.get(f"/cek?kode={code}").text


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_a_change_committed_by_another_process_is_seen_within_the_check_interval(apps, engine):
    one, two, _ = apps
    _, ident, _ = publish(engine)
    now = [1000.0]
    for client in (one, two):
        cache_of(client).clock = lambda: now[0]
        assert "Sudah berakhir" not in client.get(f"/peringatan/{ident}").text
    # Another process (a Celery worker, another host): the state and the version in one transaction, nothing
    # in this process hears of it.
    with engine.begin() as c:
        c.execute(sa.update(Alert).where(Alert.identifier == ident).values(state="expired"))
        c.execute(sa.text("UPDATE public_state_version SET version = version + 1 WHERE id = 1"))
    check_s = cache_of(one).check_s
    assert check_s == 0.05
    now[0] += check_s / 2
    assert all("Sudah berakhir" not in client.get(f"/peringatan/{ident}").text for client in (one, two))  # the bound
    now[0] = 1000.0 + check_s * 1.001
    assert all("Sudah berakhir" in client.get(f"/peringatan/{ident}").text for client in (one, two))


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_an_alert_leaves_the_pages_when_it_expires_without_any_state_change(apps, engine):
    one, _, plain = apps
    _, ident, _ = publish(engine, expires=utcnow() + timedelta(minutes=30))
    assert ident in one.get("/").text and ident in one.get("/feed/atom.xml").text
    with time_machine.travel(utcnow() + timedelta(minutes=31), tick=False):
        assert ident not in one.get("/").text and ident not in one.get("/feed/atom.xml").text
        assert "Sudah berakhir" in one.get(f"/peringatan/{ident}").text
        assert one.get("/").content == plain.get("/").content


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_etag_304_and_headers(apps, engine):
    one, two, _ = apps
    _, ident, code = publish(engine)
    path = f"/peringatan/{ident}"
    first = one.get(path)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=5, stale-while-revalidate=30"
    assert two.get(path).headers["etag"] == etag  # same bytes, same strong ETag on every instance
    not_modified = one.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b"" and not_modified.headers["etag"] == etag
    assert one.get(path, headers={"If-None-Match": '"other", ' + etag}).status_code == 304
    assert one.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    assert one.get(path, headers={"If-None-Match": etag}).status_code == 304
    # A signed-in staff member's request is never answered from, or kept as, a shared copy.
    staff = one.get(path, headers={"Authorization": "Bearer x"})
    assert staff.headers["cache-control"] == "no-store"
    assert one.get(f"/cek?kode={code}").headers["etag"] == two.get(f"/cek?kode={code}").headers["etag"]


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_a_page_with_a_single_use_form_token_gets_a_fresh_one_each_time(db_url, apps):
    settings = settings_for(db_url)
    rendered = []

    async def route(scope, receive, send):
        rendered.append(scope["path"])
        body = f'<form><input type="hidden" name="token" value="{form_token(settings, form="hoaks")}"></form>'
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": body.encode()})

    client = TestClient(PublicPageCache(route, settings=settings))
    pages = [client.get("/cek") for _ in range(3)]
    assert rendered == ["/cek"]
    tokens = [TOKEN.search(r.text).group(1) for r in pages]
    assert len(set(tokens)) == 3
    for page, token in zip(pages, tokens, strict=True):
        check_form_token(settings, token, form="hoaks")
        assert "etag" not in page.headers and "cache-control" not in page.headers
        assert page.text == f'<form><input type="hidden" name="token" value="{token}"></form>'


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_unknown_codes_and_parameters_cannot_push_out_the_pages(db_url, engine, redis_url):
    with session_scope(engine) as s:
        make_team(s)
    _, ident, _ = publish(engine)
    settings = settings_for(db_url, public_cache_entries=4, public_cache_cek_entries=3)
    with TestClient(create_app(settings)) as client:
        cache = cache_of(client)
        client.get(f"/peringatan/{ident}")
        for n in range(10):
            assert client.get(f"/cek?kode=ZZ{n:04d}").status_code == 200
            assert client.get(f"/peringatan/{ident}?utm={n}").status_code == 200
        assert len(cache.cek) == 3 and len(cache.pages) == 1
        before = cache.renders
        client.get(f"/peringatan/{ident}")
        assert cache.renders == before  # still cached
        assert client.get(f"/cek?kode={'Z' * 33}").status_code == 422 and len(cache.cek) == 3


def test_lru_is_bounded_by_entries_and_bytes():
    def entry(size):
        return Entry(headers=(), body=b"x" * size, etag=b'"e"', built_wall=utcnow())

    lru = Lru(entries=3, max_bytes=100)
    for n in range(5):
        lru.put((n,), entry(10))
    assert len(lru) == 3 and lru.get((0,)) is None and lru.get((4,)) is not None
    lru.get((2,))
    lru.put((9,), entry(85))
    assert lru.bytes <= 100 and lru.get((3,)) is None and lru.get((4,)) is None
    assert lru.get((2,)) is not None and lru.get((9,)) is not None


@pytest.mark.parametrize("dbs", ["sqlite"], indirect=True)
def test_without_a_readable_version_every_request_is_rendered(apps, engine):
    one, _, _ = apps
    _, ident, _ = publish(engine)
    with engine.begin() as c:
        c.execute(sa.text("DELETE FROM public_state_version"))
    cache = cache_of(one)
    cache.clock = lambda: 1e9  # past any scheduled read
    assert one.get(f"/peringatan/{ident}").status_code == 200
    with engine.begin() as c:
        c.execute(sa.text("DROP TABLE public_state_version"))
    cache.clock = lambda: 2e9
    page = one.get(f"/peringatan/{ident}")
    assert page.status_code == 200 and "stale-while-revalidate" not in page.headers["cache-control"]
    assert cache.renders == 0 and len(cache.pages) == 0
