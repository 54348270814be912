"""One configured renderer: what the console previews, what /cek shows and what the fan-out sends are the same
bytes, also with a non-default SMS budget; Cancel messages are wholly in their own language."""

import html

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert, MsgType
from broadcast.api.app import create_app
from broadcast.db import session_factory, session_scope
from broadcast.dispatch.claims import claim
from broadcast.dispatch.models import Delivery, OutboxMessage
from broadcast.dispatch.outcomes import record_results
from broadcast.dispatch.pacing import send_claimed
from broadcast.dispatch.plan import plan_alert
from broadcast.dispatch.wiring import build_active_channels
from broadcast.settings import Settings
from broadcast.users.models import User
from tests.factories import alert_payload, make_subscribers, make_team
from tests.integration.test_api import login

pytestmark = pytest.mark.integration

DESCRIPTION = (
    "Hujan deras sejak pukul 02.00 menyebabkan Sungai Palu meluap di Kelurahan Lere, Ujuna dan Baru. "
    "Ketinggian air mencapai 80 cm di permukiman dan diperkirakan naik hingga siang hari. "
    "Jalan Cumi-Cumi dan Jalan Rajamoili tidak dapat dilalui kendaraan roda dua."
)
INSTRUCTION = (
    "Matikan listrik, amankan dokumen penting, dan segera pindah ke tempat yang lebih tinggi atau ke SDN 01 Lere. "
    "Jangan berjalan atau berkendara melewati arus banjir."
)


@pytest.fixture
def settings(db_url, redis_url, monkeypatch):
    # A non-default budget from the environment, as an operator would set it.
    monkeypatch.setenv("BROADCAST_TWILIO__MAX_SEGMENTS", "2")
    s = Settings(environment="test", database_url=db_url, broker_url=redis_url, secret_key="test-secret-key-123")
    assert s.twilio.max_segments == 2
    return s


@pytest.fixture
def client(settings, engine):
    with session_scope(engine) as s:
        make_team(s)
        make_subscribers(s)
    with TestClient(create_app(settings)) as c:
        yield c


def _payload(status="Exercise"):
    payload = alert_payload(status)
    payload["infos"][0] |= {"description": DESCRIPTION, "instruction": INSTRUCTION}
    return payload


def _publish_and_deliver(engine, settings, alert_id):
    """Approve, plan and send through the channels the worker builds from the same settings."""
    with session_factory(engine)() as session:
        approver = session.scalar(sa.select(User).where(User.username == "apv.sulteng"))
        operator = session.scalar(sa.select(User).where(User.username == "op.palu"))
        alerts.submit_alert(session, alert_id=alert_id, actor=operator)
        alerts.approve_alert(session, alert_id=alert_id, approver=approver, production=False)
        session.commit()
        planned = plan_alert(session, alert_id=alert_id)
        session.commit()
        channels = build_active_channels(settings)
        for ids in planned.values():
            batch = claim(session, delivery_ids=ids, lease_s=60, public_base_url=settings.public_base_url)
            session.commit()
            record_results(session, sent=send_claimed(batch, channels=channels))
            session.commit()
        rows = session.execute(
            sa.select(OutboxMessage.channel, Delivery.language, OutboxMessage.text)
            .join(Delivery, Delivery.id == OutboxMessage.delivery_id)
            .where(Delivery.alert_id == alert_id)
        ).all()
    return rows


def test_preview_is_the_outbox_byte_for_byte_with_a_non_default_budget(client, engine, settings):
    op = login(client, "op.palu")
    body = _payload()
    alert_id = client.post("/api/v1/alerts", json=body, headers=op).json()["id"]
    stored = client.get(f"/api/v1/alerts/{alert_id}/previews", headers=op).json()
    simple = client.get(f"/api/v1/alerts/{alert_id}/preview", headers=op).json()
    editing = client.post(f"/api/v1/alerts/preview?alert_id={alert_id}", json=body, headers=op).json()
    sms = {p["language"][:2]: p for p in stored["channels"]["sms"]}
    assert sms["id"]["max_segments"] == 2 and sms["id"]["budget_source"] == "setting"
    assert sms["id"]["segments"] == 2  # more than the old one-segment preview, within the configured two
    assert "Jangan berjalan atau berkendara melewati arus banjir." in sms["id"]["text"]
    assert stored["placeholders"] == {} and editing["placeholders"] == {}

    rows = _publish_and_deliver(engine, settings, alert_id)
    sent_sms: dict[str, set[str]] = {}
    for channel, language, text in rows:
        if channel == "sms":
            sent_sms.setdefault(language[:2], set()).add(text)
    for lang, preview in sms.items():
        assert sent_sms[lang] == {preview["text"]}, lang  # byte for byte
    for other in (simple, editing["channels"]):
        assert [p["text"] for p in other["sms"]] == [p["text"] for p in stored["channels"]["sms"]]
    thread = "\n\n".join(p["text"] for p in stored["channels"]["social"])
    assert [text for ch, _, text in rows if ch == "social"] == [thread]

    # /cek shows the texts that were sent, each once: the X thread as its posts, not again joined.
    code = client.get(f"/api/v1/alerts/{alert_id}", headers=op).json()["verify_code"]
    page = html.unescape(client.get(f"/cek?kode={code}").text)
    for preview in stored["channels"]["sms"]:
        assert page.count(preview["text"]) == 1
    for post in stored["channels"]["social"]:
        assert page.count(post["text"]) == 1


def test_draft_preview_marks_the_values_assigned_on_save(client):
    op = login(client, "op.palu")
    out = client.post("/api/v1/alerts/preview", json=_payload(), headers=op).json()
    ph = out["placeholders"]
    assert set(ph) == {"verify_code", "identifier", "public_url", "short_url"} and len(ph["verify_code"]) == 6
    for entry in out["channels"]["sms"]:
        assert entry["placeholders"] == ["verify_code", "short_url"]
        assert f"Kode: {ph['verify_code']} Info: {ph['short_url']}" in entry["text"]
    assert "verify_code" in out["channels"]["social"][0]["placeholders"]


def test_cancel_reason_is_given_per_language_and_never_crosses_over(client, engine, settings):
    op = login(client, "op.palu")
    alert_id = client.post("/api/v1/alerts", json=_payload(), headers=op).json()["id"]
    _publish_and_deliver(engine, settings, alert_id)
    r = client.post(f"/api/v1/alerts/{alert_id}/cancel", json={"reason": "Air sudah surut"}, headers=op)
    assert r.status_code == 201, r.text
    cancel_id = r.json()["id"]
    texts = {
        p["language"][:2]: p["text"]
        for p in client.get(f"/api/v1/alerts/{cancel_id}/previews", headers=op).json()["channels"]["sms"]
    }
    assert texts["id"].startswith("[LATIHAN] DIBATALKAN: Banjir di Kota Palu. Air sudah surut. Kode: ")
    assert texts["en"].startswith("[EXERCISE] CANCELLED: Flooding in Palu City. Kode: ") and "surut" not in texts["en"]
    with session_scope(engine) as session:
        original = session.get(Alert, alert_id)
        approver = session.scalar(sa.select(User).where(User.username == "apv.sulteng"))
        both = alerts.create_follow_up(
            session,
            original_id=original.id,
            actor=approver,
            msg_type=MsgType.CANCEL,
            reason="Air sudah surut",
            reason_en="The water has receded",
        )
        assert [i.description for i in both.infos] == ["Air sudah surut", "The water has receded"]
    r = client.post(
        f"/api/v1/alerts/{alert_id}/cancel", json={"reason": "Air surut", "reason_en": "x" * 2001}, headers=op
    )
    assert r.status_code == 422


def test_an_update_leads_with_what_changed_in_preview_and_outbox(client, engine, settings):
    op = login(client, "op.palu")
    alert_id = client.post("/api/v1/alerts", json=_payload(), headers=op).json()["id"]
    _publish_and_deliver(engine, settings, alert_id)
    update_id = client.post(f"/api/v1/alerts/{alert_id}/update", json={}, headers=op).json()["id"]
    body = _payload()
    body["infos"][0]["description"] += " Ketinggian air naik menjadi 120 cm."
    body["infos"][1]["description"] += " The water has risen to 120 cm."
    assert client.put(f"/api/v1/alerts/{update_id}", json=body, headers=op).status_code == 200
    stored = client.get(f"/api/v1/alerts/{update_id}/previews", headers=op).json()["channels"]
    editing = client.post(f"/api/v1/alerts/preview?alert_id={update_id}", json=body, headers=op).json()["channels"]
    sms = {p["language"][:2]: p["text"] for p in stored["sms"]}
    assert sms["id"].startswith("[LATIHAN] PEMBARUAN. Perubahan: Ketinggian air naik menjadi 120 cm. Banjir di")
    assert sms["en"].startswith("[EXERCISE] UPDATE. Change: The water has risen to 120 cm. Flooding in")
    assert "Perubahan: Ketinggian air naik menjadi 120 cm." in stored["social"][0]["text"]
    assert [p["text"] for p in editing["sms"]] == [p["text"] for p in stored["sms"]]
    rows = _publish_and_deliver(engine, settings, update_id)
    assert {text for channel, _, text in rows if channel == "sms"} == set(sms.values())


def test_a_correction_is_labelled_koreksi_in_preview_and_outbox(client, engine, settings):
    op = login(client, "op.palu")
    alert_id = client.post("/api/v1/alerts", json=_payload(), headers=op).json()["id"]
    _publish_and_deliver(engine, settings, alert_id)
    r = client.post(f"/api/v1/alerts/{alert_id}/correct", json={"reason": "Salah lokasi"}, headers=op)
    assert r.status_code == 201, r.text
    correction_id = r.json()["id"]
    body = _payload()
    body["infos"][0]["description"] += " Ketinggian air 40 cm, bukan 120 cm."
    body["infos"][1]["description"] += " The water is 40 cm deep, not 120 cm."
    assert client.put(f"/api/v1/alerts/{correction_id}", json=body, headers=op).status_code == 200
    stored = client.get(f"/api/v1/alerts/{correction_id}/previews", headers=op).json()["channels"]
    editing = client.post(f"/api/v1/alerts/preview?alert_id={correction_id}", json=body, headers=op).json()
    sms = {p["language"][:2]: p["text"] for p in stored["sms"]}
    assert sms["id"].startswith("[LATIHAN] KOREKSI. Perubahan: Ketinggian air 40 cm, bukan 120 cm. Banjir di"), sms
    assert sms["en"].startswith("[EXERCISE] CORRECTION. Change: The water is 40 cm deep, not 120 cm. Flooding in")
    assert "KOREKSI: " in stored["social"][0]["text"] and "PEMBARUAN" not in stored["social"][0]["text"]
    assert [p["text"] for p in editing["channels"]["sms"]] == [p["text"] for p in stored["sms"]]
    assert editing["confirm"]["id"].startswith("Kirim KOREKSI LATIHAN"), editing["confirm"]
    assert editing["confirm"]["en"].startswith("Send a CORRECTION of an EXERCISE"), editing["confirm"]
    rows = _publish_and_deliver(engine, settings, correction_id)
    assert {text for channel, _, text in rows if channel == "sms"} == set(sms.values())
    # The public pages name it a correction too (the same rule: alerts.rules.is_correction).
    identifier = client.get(f"/api/v1/alerts/{correction_id}", headers=op).json()["identifier"]
    page = client.get(f"/peringatan/{identifier}").text
    assert '<span class="badge">KOREKSI</span>' in page and '<span class="badge">PEMBARUAN</span>' not in page
    assert '<span class="badge">CORRECTION</span>' in client.get(f"/peringatan/{identifier}?lang=en").text


def test_review_page_warns_when_the_first_instruction_sentence_does_not_fit(client):
    from tests.integration.test_console import sign_in

    op = login(client, "op.palu")
    body = _payload()
    long_first = "Segera tinggalkan rumah " + "dan bantu tetangga yang lanjut usia, " * 9 + "menuju lapangan desa."
    body["infos"][0]["instruction"] = long_first + " Bawa dokumen penting."
    alert_id = client.post("/api/v1/alerts", json=body, headers=op).json()["id"]
    sms = client.get(f"/api/v1/alerts/{alert_id}/previews", headers=op).json()["channels"]["sms"][0]
    assert not sms["action_fits"] and sms["segments"] == 3 > sms["max_segments"] == 2
    assert " ".join(long_first.split()) in sms["text"]  # whole, over budget, never cut
    sign_in(client, "op.palu")
    page = client.get(f"/konsol/peringatan/{alert_id}").text
    assert 'class="warn action-over"' in page and "tidak muat dalam 2 segmen; SMS ini dikirim 3 segmen" in page
