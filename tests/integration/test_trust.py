"""Trust features on SQLite and PostgreSQL: codes on /cek and by SMS CEK, altered texts, cancelled alerts, hoax
intake and clarifications, replies to reporters (opt-out respected), signed CAP served, the open dataset."""

import csv
import io
import re
from collections import Counter
from typing import ClassVar

import phonenumbers
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcast import events
from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert, MsgType
from broadcast.alerts.schemas import AlertCreate
from broadcast.api.app import create_app
from broadcast.cap import signing
from broadcast.dispatch.models import Delivery
from broadcast.dispatch.plan import plan_alert
from broadcast.reports import intake, triage
from broadcast.settings import Settings
from broadcast.subscribers import service as subscribers
from broadcast.trust import service as trust
from broadcast.trust import transparency, verify
from broadcast.trust.models import HoaxReport, ReplyContact, TrustReply
from broadcast.webhooks.service import handle_inbound_sms
from channels.base import InboundEvent
from channels.outbox import Outbox
from channels.sms import SmsRenderer
from channels.social import XRenderer
from tests.factories import PASSWORD, SendRecorder, alert_payload, login_form, make_subscribers, make_team

pytestmark = [pytest.mark.integration, pytest.mark.clock]
BASE = "https://peringatan.example.id"
KEY = b"k" * 32
CITIZEN = "+6281377712345"
OTHER = "+6281377700001"


def publish(session, team, *, status="Actual", codes=("72.71",), headline=None, hazard=None):
    payload = alert_payload(status, codes=list(codes))
    if headline:
        payload["infos"][0]["headline"] = headline
    alert = alerts.create_alert(session, data=AlertCreate(**payload), author=team["operator"], sender="bpbd@palu")
    if hazard:
        for info in alert.infos:
            info.hazard = hazard
    alerts.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    alerts.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=True)
    plan_alert(session, alert_id=alert.id)
    session.flush()
    return alert


def cancel(session, team, original):
    follow = alerts.create_follow_up(
        session, original_id=original.id, actor=team["operator"], msg_type=MsgType.CANCEL, reason="Air surut"
    )
    alerts.submit_alert(session, alert_id=follow.id, actor=team["operator"])
    alerts.approve_alert(session, alert_id=follow.id, approver=team["approver"], production=True)
    plan_alert(session, alert_id=follow.id)
    session.flush()
    return follow


def sms(session, body, *, sid, sender=CITIZEN):
    event = InboundEvent("sms", sid, sender, body, {"From": sender, "Body": body, "MessageSid": sid})
    return handle_inbound_sms(session, event=event, author_key=KEY, advanced_opt_out=False, public_base_url=BASE)


@pytest.fixture
def team(session):
    t = make_team(session)
    session.commit()
    return t


@pytest.fixture
def client(db_url, team, tmp_path, redis_url):
    settings = Settings(
        environment="test", database_url=db_url, secret_key="k" * 20, public_base_url=BASE, data_dir=tmp_path
    )
    # https, as public_base_url: the session cookie is Secure.
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        yield c


def _sms_text(alert, language="id-ID"):
    data = alerts.to_alert_data(alert, public_base_url=BASE)
    return SmsRenderer().marked_text(data, language)


def test_every_message_carries_the_alert_code_within_its_budget(session, team):
    alert = publish(session, team)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{6}", alert.verify_code)
    data = alerts.to_alert_data(alert, public_base_url=BASE)
    for preview in SmsRenderer().preview(data):
        assert preview.text.endswith(f"Kode: {alert.verify_code} Info: {BASE}/p/{alert.id}")  # the link stays last
        assert preview.details["segments"] <= 1 and preview.details["fits"]
    posts = XRenderer().render_thread(data, "id-ID")
    assert f"Kode: {alert.verify_code} Cek: {BASE}/cek" in posts[0].text
    assert all(p.weighted_length <= 280 for p in posts)
    other = publish(session, team, headline="Banjir susulan")
    assert other.verify_code != alert.verify_code


def test_code_verifies_on_cek_and_an_altered_text_does_not(client, session, team):
    alert = publish(session, team)
    session.commit()
    page = client.get("/cek", params={"kode": alert.verify_code.lower()})
    assert page.status_code == 200 and "RESMI" in page.text and "AKTIF" in page.text
    assert "Banjir di Kota Palu" in page.text and f"Kode: {alert.verify_code}" in page.text

    original = _sms_text(alert)
    exact = client.post("/cek", data={"teks": "  " + original.replace(" ", "\n", 3) + " "})
    assert "RESMI" in exact.text and "BUKAN pesan resmi" not in exact.text

    altered = original.replace("Segera mengungsi", "Tidak perlu mengungsi")
    result = client.post("/cek", data={"teks": altered})
    assert "BUKAN pesan resmi" in result.text and "DIUBAH" in result.text
    assert "/lapor-hoaks" in result.text  # offered to report it
    one_char = original.replace("Kota Palu", "Kota Paiu")
    assert not verify.check_text(session, text=one_char, public_base_url=BASE).official
    stranger = verify.check_text(session, text="Gempa 9 SR akan terjadi besok jam 3, segera ngungsi", public_base_url=BASE)
    assert not stranger.official and stranger.closest is None

    unknown = client.get("/cek", params={"kode": "ZZZZZZ"})
    assert "BUKAN kode resmi" in unknown.text


def test_cancelled_alert_shows_dibatalkan_on_cek_and_by_sms(client, session, team):
    alert = publish(session, team)
    follow = cancel(session, team, alert)
    session.commit()
    found = verify.find_by_code(session, code=alert.verify_code, public_base_url=BASE)
    assert found.state is verify.CANCELLED and found.follow_up.id == follow.id
    page = client.get("/cek", params={"kode": alert.verify_code})
    assert "DIBATALKAN" in page.text and "AKTIF" not in page.text.split("hasil", 1)[1].split("</section>")[0]
    reply = sms(session, f"CEK {alert.verify_code}", sid="SM" + "c" * 32)
    assert "DIBATALKAN" in reply and "Banjir di Kota Palu" in reply and "CANCELLED" in reply
    # The Cancel message itself is official but never "active" (issue 18: one public truth of the chain).
    of_cancel = sms(session, f"cek {follow.verify_code}", sid="SM" + "d" * 32)
    assert "RESMI" in of_cancel and "DIBATALKAN" in of_cancel and "AKTIF" not in of_cancel
    bogus = sms(session, "CEK 7KQ2MX", sid="SM" + "e" * 32)
    assert "TIDAK dikenal" in bogus


def test_drafts_are_not_official(session, team):
    draft = alerts.create_alert(session, data=AlertCreate(**alert_payload()), author=team["operator"], sender="s")
    session.flush()
    assert verify.find_by_code(session, code=draft.verify_code, public_base_url=BASE) is None


def test_hoax_intake_clusters_and_clarification_replies_respect_opt_out(client, session, team):
    make_subscribers(session)
    rumour = "Awas!! BMKG: gempa 9 SR dan tsunami di Palu malam ini jam 23.00, segera mengungsi sebarkan!!"
    sms(session, "HOAKS " + rumour, sid="SM" + "1" * 32, sender=CITIZEN)
    sms(session, "hoaks Fwd: " + rumour.replace("!!", "!"), sid="SM" + "2" * 32, sender=OTHER)
    sms(session, "HOAKS " + rumour, sid="SM" + "1" * 32, sender=CITIZEN)  # Twilio retry: stored once
    sms(session, "HOAKS Bantuan tunai Rp 5 juta untuk korban banjir, daftar di link ini", sid="SM" + "3" * 32)
    session.commit()
    r = client.post("/lapor-hoaks", data={"teks": rumour.lower(), "token": hoax_token(client)})
    assert r.status_code == 200 and "Terima kasih" in r.text
    assert client.post("/lapor-hoaks", data={"teks": "   ", "token": hoax_token(client)}).status_code == 422
    assert session.scalar(sa.select(sa.func.count()).select_from(HoaxReport)) == 4

    clusters = trust.cluster_hoaxes(session)
    assert [c.size for c in clusters] == [3, 1]
    assert clusters[0].forwarders == 3

    # OTHER stops before the clarification: they get nothing.
    sub = subscribers.add_subscriber(session, phone=OTHER, admin_code="72.71", language="id")
    sms(session, "BERHENTI", sid="SM" + "4" * 32, sender=OTHER)
    session.commit()
    assert not session.get(type(sub), sub.id).active

    # The console needs a staff login; the clarification reaches every forwarder who did not stop.
    assert client.get("/konsol/hoaks", follow_redirects=False).status_code == 303
    client.post("/masuk", data=login_form(client, "analis", PASSWORD))
    console = client.get("/konsol/hoaks")
    assert console.status_code == 200 and "3</strong> laporan" in console.text
    form = {
        "hoax_ids": [str(clusters[0].members[0].id)],
        "title_id": "Tidak ada peringatan tsunami untuk Palu",
        "body_id": "BMKG tidak mengeluarkan peringatan tsunami. Gempa tidak bisa diprediksi.",
        "csrf": client.cookies.get("broadcast_csrf"),
    }
    done = client.post("/konsol/hoaks/klarifikasi", data=form, follow_redirects=False)
    # Issue 18: a second person approves what citizens receive; nothing is public or sent before that.
    assert done.status_code == 303 and done.headers["location"] == "/konsol/hoaks"
    assert "Tidak ada peringatan tsunami" not in client.get("/klarifikasi").text
    session.commit()  # a fresh snapshot of what the app committed
    assert session.scalar(sa.select(sa.func.count()).select_from(TrustReply)) == 0
    (pending,) = trust.pending_clarifications(session)
    session.commit()
    client.cookies.clear()
    client.post("/masuk", data=login_form(client, "apv.sulteng"))
    done = client.post(f"/konsol/hoaks/klarifikasi/{pending.id}/setujui",
                       data={"csrf": client.cookies.get("broadcast_csrf")}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("/klarifikasi/")
    page = client.get(done.headers["location"])
    assert "Tidak ada peringatan tsunami" in page.text and "KLARIFIKASI RESMI" in page.text
    assert "Tidak ada peringatan tsunami" in client.get("/klarifikasi").text
    session.expire_all()
    replies = list(session.scalars(sa.select(TrustReply)))
    assert len(replies) == 1 and replies[0].kind == "clarified" and replies[0].channel == "sms"
    assert "KLARIFIKASI" in replies[0].text and "/klarifikasi/" in replies[0].text
    assert trust.cluster_hoaxes(session)[0].size == 1  # the clarified group left the open list
    with pytest.raises(trust.InvalidHoax):  # a link only to an issued alert
        draft = alerts.create_alert(session, data=AlertCreate(**alert_payload()), author=team["operator"], sender="s")
        trust.submit_clarification(session, hoax_ids=[clusters[1].members[0].id], title_id="t", body_id="b",
                                   actor=team["analyst"], alert_id=draft.id)
    session.rollback()

    sent = trust.send_reply(session, reply_id=replies[0].id, channels={"sms": Outbox(SmsRenderer())})
    assert sent.state == "sent" and sent.provider_id
    assert trust.send_reply(session, reply_id=replies[0].id, channels={"sms": Outbox(SmsRenderer())}) is None


def test_notify_reporter_on_the_channel_it_came_from_in_its_language(session, team):
    sms(session, "LAPOR banjir 50 cm di Jl. Diponegoro", sid="SM" + "5" * 32)
    sms(session, "REPORT landslide near the school", sid="SM" + "6" * 32, sender=OTHER)
    session.flush()
    id_report = intake.find_report(session, source="sms", external_id="SM" + "5" * 32)
    en_report = intake.find_report(session, source="sms", external_id="SM" + "6" * 32)
    assert session.get(ReplyContact, id_report.author_hash).phone == CITIZEN

    first = trust.notify_reporter(session, id_report, "verified")
    assert first.channel == "sms" and "DIVERIFIKASI" in first.text and f"no. {id_report.id}" in first.text
    assert trust.notify_reporter(session, id_report, "verified") is None  # once per kind
    english = trust.notify_reporter(session, en_report, "actioned")
    assert "ACTED ON" in english.text

    sent = trust.send_reply(session, reply_id=first.id, channels={"sms": RecordingSms()})
    assert sent.state == "sent" and RecordingSms.sent[-1].recipient == CITIZEN

    # The English reporter texts STOP: the pending reply is skipped and no new one is queued.
    sms(session, "STOP", sid="SM" + "7" * 32, sender=OTHER)
    session.flush()
    assert session.get(TrustReply, english.id).state == "skipped"
    assert trust.notify_reporter(session, en_report, "verified") is None

    # A stopped subscriber (carrier opt-out) who reported earlier gets nothing either.
    sub = subscribers.add_subscriber(session, phone=CITIZEN, admin_code="72.71")
    subscribers.stop_subscriber(session, subscriber=sub, reason="twilio-opt-out")
    assert trust.notify_reporter(session, id_report, "actioned") is None

    # X: a reply to the citizen's post.
    post, _ = intake.store_inbound(
        session, source="x", external_id="1790", raw={"tweet": {"id": "1790"}}, author="h" * 64
    )
    post.language = "id"
    reply = trust.notify_reporter(session, post, "actioned")
    assert reply.channel == "social" and reply.address == "1790" and "DITINDAKLANJUTI" in reply.text
    x = RecordingX()
    assert trust.send_reply(session, reply_id=reply.id, channels={"social": x}).state == "sent"
    assert x.sent[-1].reply_to == "1790"


class RecordingSms(Outbox):
    sent: ClassVar[list] = []

    def __init__(self):
        super().__init__(SmsRenderer())

    def send(self, message):
        RecordingSms.sent.append(message)
        return "SM-recorded"


class RecordingX(Outbox):
    def __init__(self):
        super().__init__(XRenderer())
        self.sent = []

    def send(self, message):
        self.sent.append(message)
        return "x-recorded"


def test_served_cap_is_signed_and_verifies_with_the_published_certificate(client, session, team):
    alert = publish(session, team)
    session.commit()
    cert = client.get("/.well-known/cap-signing.pem")
    assert cert.status_code == 200 and cert.content.startswith(b"-----BEGIN CERTIFICATE-----")
    doc = client.get(f"/cap/{alert.identifier}.xml").content
    checks = signing.verify_cap(doc, cert_pem=cert.content)
    assert len(checks) == 1 and checks[0].valid and checks[0].trusted and not checks[0].legacy
    tampered = doc.replace(b"Banjir di Kota Palu", b"Banjir di Kota Poso")
    assert not signing.verify_cap(tampered, cert_pem=cert.content)[0].valid


def test_import_requires_a_valid_signature_from_a_configured_sender(session, team, tmp_path):
    from pathlib import Path

    from broadcast.intake import cap_documents

    fixtures = Path(__file__).parents[1] / "fixtures/cap"
    pair = signing.create_dev_keypair(tmp_path / "keys", common_name="hsas@dhs.gov")
    data = signing.sign_cap((fixtures / "oasis_examples/a1_homeland_security_advisory.xml").read_bytes(), pair)
    trusted = {"hsas@dhs.gov": pair.cert_pem}
    tampered = data.replace(b"Code ORANGE", b"Code YELLOW", 1)
    assert tampered != data
    refused = cap_documents.import_document(
        session, tampered, author=team["admin"], origin="cap-import", fetch=None, trusted_certs=trusted
    )
    assert not refused.imported and "signature" in refused.skipped[0].reason
    ok = cap_documents.import_document(
        session, data, author=team["admin"], origin="cap-import", fetch=None, trusted_certs=trusted
    )
    assert len(ok.imported) == 1

    # Issue 24: a pinned sender's document must carry exactly one enveloped SHA-256+ signature made with a
    # certificate valid now. Environment Canada's real copy (RSA-SHA1, a relay signature too, a certificate that
    # expired in 2015) is refused even with its own certificate pinned.
    ec = (fixtures / "real_world/ca_ec_snowfall_signed.cap").read_bytes()
    pinned_ec = cap_documents.import_document(
        session, ec, author=team["admin"], origin="cap-import", fetch=None,
        trusted_certs={"cap-pac@ec.gc.ca": _embedded_ec_cert(ec)},
    )
    assert not pinned_ec.imported and "signature" in pinned_ec.skipped[0].reason


def _embedded_ec_cert(data):
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = re.findall(rb"<X509Certificate>([^<]+)</X509Certificate>", data)[-1]
    cert = x509.load_der_x509_certificate(base64.b64decode(b"".join(der.split())))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_dashboard_csv_matches_counts_computed_from_the_database(client, session, team):
    sub_ids = make_subscribers(session)
    for n in range(6):
        publish(session, team, headline=f"Banjir {n}", hazard="banjir")
    publish(session, team, headline="Longsor", hazard="tanah_longsor")
    publish(session, team, status="Exercise", headline="Latihan")  # not Actual: not counted
    rows = session.execute(sa.select(Delivery).where(Delivery.channel == "sms")).scalars().all()
    for i, d in enumerate(rows):
        d.state = "delivered" if i % 4 else "failed"
    session.commit()

    body = client.get("/transparansi/data.csv")
    assert body.status_code == 200 and body.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(body.text)))
    issued = {(r["month"], r["kabupaten_code"], r["hazard"]): r["count"] for r in table if r["dataset"] == "alerts_issued"}

    # Straight from the database: Actual alerts that were published, per month, kabupaten and hazard.
    direct = Counter()
    for alert in session.scalars(sa.select(Alert).where(Alert.status == "Actual", Alert.published_at.is_not(None))):
        direct[(alert.published_at.strftime("%Y-%m"), "72.71", alert.infos[0].hazard)] += 1
    assert set(issued) == set(direct)
    for key, n in direct.items():
        assert issued[key] == (str(n) if n >= 5 else "<5")
    assert issued[(next(iter(direct))[0], "72.71", "banjir")] == "6"

    total = session.scalar(
        sa.select(sa.func.count()).select_from(Delivery).join(Alert, Alert.id == Delivery.alert_id).where(
            Alert.status == "Actual", Delivery.channel == "sms", Delivery.state.in_(["delivered", "failed"])
        )
    )
    ok = session.scalar(
        sa.select(sa.func.count()).select_from(Delivery).join(Alert, Alert.id == Delivery.alert_id).where(
            Alert.status == "Actual", Delivery.channel == "sms", Delivery.state == "delivered"
        )
    )
    sms_row = next(r for r in table if r["dataset"] == "delivery_success_percent" and r["channel"] == "sms")
    assert int(sms_row["count"]) == total and float(sms_row["value"]) == round(100 * ok / total, 1)

    data = client.get("/transparansi/data.json").json()
    assert data["licence"] == "CC BY 4.0" and len(data["rows"]) == len(table)
    page = client.get("/transparansi")
    assert page.status_code == 200 and "<svg" in page.text and "CC BY 4.0" in page.text
    assert sub_ids  # subscribers existed while the dataset was built


def test_exercises_and_tests_have_their_own_marked_view(client, session, team):
    """Every install can see the dashboard working: exercises and tests are counted in a separate LATIHAN view,
    and never in the official one."""
    for n in range(5):
        publish(session, team, status="Exercise", headline=f"Latihan {n}", hazard="banjir")
    publish(session, team, status="Test", headline="Uji", hazard="banjir")
    publish(session, team, headline="Nyata", hazard="tanah_longsor")
    session.commit()

    drill = list(csv.DictReader(io.StringIO(client.get("/transparansi/latihan/data.csv").text)))
    issued = {(r["kabupaten_code"], r["hazard"]): r["count"] for r in drill if r["dataset"] == "alerts_issued"}
    assert issued == {("72.71", "banjir"): "6"}  # 5 exercises + 1 test; the Actual alert is not here
    official = list(csv.DictReader(io.StringIO(client.get("/transparansi/data.csv").text)))
    assert {r["hazard"] for r in official if r["dataset"] == "alerts_issued"} == {"tanah_longsor"}
    data = client.get("/transparansi/latihan/data.json").json()
    assert data["statuses"] == ["Exercise", "Test"] and data["source"].endswith("/transparansi/latihan")

    page = client.get("/transparansi/latihan")
    assert page.status_code == 200 and 'class="banner-exercise"' in page.text and "LATIHAN" in page.text
    assert 'href="/transparansi/latihan/data.csv"' in page.text and "[LATIHAN / EXERCISE]" in page.text
    assert ">6<" in page.text  # the count, in the chart and the table
    real = client.get("/transparansi")
    assert "banner-exercise" not in real.text and 'href="/transparansi/latihan"' in real.text


def test_small_counts_are_suppressed():
    assert transparency.suppress(0) == 0 and transparency.suppress(4) is None and transparency.suppress(5) == 5
    rows = [transparency.Row("alerts_issued", "2026-11", count=None), transparency.Row("x", count=7, value=1.5)]
    assert transparency.to_csv(rows).splitlines()[1].endswith(",<5,")


PUBLIC_PAGES = ("/", "/cek", "/klarifikasi", "/transparansi", "/transparansi/data.csv", "/transparansi/data.json",
                "/transparansi/latihan", "/transparansi/latihan/data.csv", "/transparansi/latihan/data.json",
                "/feed/atom.xml", "/feed/rss.xml", "/api/public/alerts")


def test_no_personal_data_in_any_public_output(client, session, team):
    make_subscribers(session)
    alert = publish(session, team)
    sms(session, "LAPOR banjir di depan rumah saya, hubungi 081377712345", sid="SM" + "8" * 32)
    sms(session, "HOAKS sebarkan ke 0812-9900-0001: tsunami jam 3", sid="SM" + "9" * 32, sender=OTHER)
    report = intake.find_report(session, source="sms", external_id="SM" + "8" * 32)
    trust.notify_reporter(session, report, "verified")
    session.commit()
    hoax = session.scalar(sa.select(HoaxReport))
    client.post("/masuk", data=login_form(client, "analis", PASSWORD))
    client.post(
        "/konsol/hoaks/klarifikasi",
        data={"hoax_ids": [str(hoax.id)], "title_id": "Hoaks tsunami", "body_id": "Tidak benar.",
              "csrf": client.cookies.get("broadcast_csrf")},
    )
    session.commit()
    trust.approve_clarification(session, clarification_id=trust.pending_clarifications(session)[0].id,
                                approver=team["approver"])
    session.commit()
    client.cookies.clear()
    pages = [*PUBLIC_PAGES, f"/peringatan/{alert.identifier}", f"/cap/{alert.identifier}.xml",
             f"/cek?kode={alert.verify_code}"]
    pages += re.findall(r'href="(/klarifikasi/[^"?]+)"', client.get("/klarifikasi").text)
    assert len(pages) > len(PUBLIC_PAGES) + 3
    numbers = [CITIZEN, OTHER] + [s.phone for s in session.scalars(sa.select(subscribers.Subscriber))]
    for path in pages:
        text = client.get(path).text
        found = [m.raw_string for m in phonenumbers.PhoneNumberMatcher(text, "ID")]
        assert found == [], (path, found)
        assert not re.search(r"(?:\+62|\b0)8\d[\d\s-]{7,12}\d", text), path
        for n in numbers:
            assert n not in text and n[3:] not in text, (path, n)


def test_a_real_worker_sends_queued_replies_once(engine, db_url, session, team, redis_url, monkeypatch):
    import time

    from celery.contrib.testing.worker import start_worker

    from broadcast.runtime import active_channels
    from broadcast.settings import get_settings
    from broadcast.worker import celery

    sms(session, "LAPOR pohon tumbang di Jl. Hasanuddin", sid="SM" + "a" * 32)
    report = intake.find_report(session, source="sms", external_id="SM" + "a" * 32)
    reply = trust.notify_reporter(session, report, "actioned")
    session.commit()
    monkeypatch.setenv("BROADCAST_DATABASE_URL", db_url)
    get_settings.cache_clear()
    active_channels.cache_clear()
    try:
        with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=30, queues=["intake"]):
            from broadcast.trust.tasks import send_replies

            send_replies.delay([reply.id])
            send_replies.delay([reply.id])  # a duplicate task sends nothing more
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                session.expire_all()
                if session.get(TrustReply, reply.id).state != "pending":
                    break
                time.sleep(0.1)
            time.sleep(0.5)
    finally:
        get_settings.cache_clear()
        active_channels.cache_clear()
    session.expire_all()
    row = session.get(TrustReply, reply.id)
    assert row.state == "sent" and row.provider_id == f"outbox-sms-reply-{reply.id}"


def test_triage_replies_to_the_reporter_once_and_times_the_response(session, team):
    """Verifying or acting on a report through triage.set_state queues one reply each on its channel; a report
    from someone who stopped gets none; the open data's response time is the first move to `actioned`."""
    sms(session, "LAPOR banjir sepinggang di Kel. Kampung Melayu", sid="SM" + "a" * 32)
    sms(session, "LAPOR pohon tumbang", sid="SM" + "b" * 32, sender=OTHER)
    sms(session, "STOP", sid="SM" + "c" * 32, sender=OTHER)
    session.flush()
    mine = intake.find_report(session, source="sms", external_id="SM" + "a" * 32)
    theirs = intake.find_report(session, source="sms", external_id="SM" + "b" * 32)
    staff = team["admin"]  # national: these reports carry no place yet (issue 18: unlocated means national staff)

    triage.set_state(session, report_id=mine.id, state="verified", actor=staff)
    triage.set_state(session, report_id=mine.id, state="actioned", actor=staff)
    triage.set_state(session, report_id=theirs.id, state="verified", actor=staff)
    queued = [e.reply_id for e in events.recorded(session) if isinstance(e, events.ReplyQueued)]
    session.commit()

    replies = session.scalars(sa.select(TrustReply).order_by(TrustReply.id)).all()
    assert [(r.kind, r.subject, r.channel) for r in replies] == [
        ("verified", f"report:{mine.id}", "sms"),
        ("actioned", f"report:{mine.id}", "sms"),
    ]
    assert queued == [r.id for r in replies]
    broker = SendRecorder()
    sent = events.send_committed(session, app=broker)
    assert [(s.event, s.queued) for s in sent] == [(events.ReplyQueued(i), True) for i in queued]
    assert broker.sent == [("trust.send_replies", [queued], None)]  # one task for the transaction's replies
    assert events.send_committed(session, app=broker) == [] and len(broker.sent) == 1  # sent once, then forgotten
    actioned = transparency._first_actioned(session)
    assert set(actioned) == {mine.id}


def hoax_token(client):
    """A fresh single-use token for the hoax form, as /cek renders it (signed with the app's secret)."""
    from broadcast.api.abuse import form_token

    return form_token(client.app.state.settings, form="hoaks")


def test_public_hoax_form_and_text_check_are_rate_limited_per_ip(client, session):
    """The anonymous forms cannot be used to flood the hoax queue or burn CPU: past the per-IP limit a 429 page
    says so and nothing more is stored."""
    from broadcast.trust.routes import CHECK_TEXTS_PER_IP

    limit = Settings().report_limit_per_ip
    codes = [client.post("/lapor-hoaks", data={"teks": f"Hoaks nomor {i}", "token": hoax_token(client)}).status_code
             for i in range(limit + 2)]
    assert codes == [200] * limit + [429, 429]
    assert session.scalar(sa.select(sa.func.count()).select_from(HoaxReport)) == limit
    refused = client.post("/lapor-hoaks", data={"teks": "satu lagi", "token": hoax_token(client)})
    assert "Terlalu banyak" in refused.text
    checks = [client.post("/cek", data={"teks": f"pesan {i}"}).status_code for i in range(CHECK_TEXTS_PER_IP + 1)]
    assert checks.count(429) == 1 and checks[-1] == 429
