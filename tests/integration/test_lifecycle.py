"""The CAP lifecycle in the domain layer: follow-ups, expiry, imports, and the audit chain."""

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine

from broadcast.alerts import capmap, service
from broadcast.alerts.models import Alert, MsgType
from broadcast.alerts.rules import ActualNotAllowedHere, InvalidTimes, InvalidTransition, TwoPersonRule
from broadcast.alerts.schemas import AlertCreate
from broadcast.audit import service as audit
from broadcast.cap import validation
from broadcast.db import utcnow
from broadcast.dispatch.claims import claim
from broadcast.dispatch.models import Delivery, OutboxMessage
from broadcast.dispatch.outcomes import record_results
from broadcast.dispatch.pacing import send_claimed
from broadcast.dispatch.plan import plan_alert
from broadcast.dispatch.sweep import sweep
from broadcast.intake import cap_documents
from broadcast.subscribers import service as subscribers
from channels.registry import build_channels
from tests.factories import alert_payload, make_subscribers, make_team

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BASE = "http://127.0.0.1:8000"


@pytest.fixture
def world(session):
    team = make_team(session)
    subs = make_subscribers(session)
    session.commit()
    return team, subs


def publish(session, team, *, status="Exercise", **overrides):
    alert = service.create_alert(session, data=AlertCreate(**alert_payload(status, **overrides)),
                                 author=team["operator"], sender="bpbd-palu@example.id")
    return approve_and_deliver(session, team, alert)


def approve_and_deliver(session, team, alert, approver=None):
    service.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    service.approve_alert(session, alert_id=alert.id, approver=approver or team["approver"], production=False)
    session.commit()
    deliver(session, alert.id)
    return alert


def deliver(session, alert_id):
    planned = plan_alert(session, alert_id=alert_id)
    session.commit()
    channels = build_channels(["sms", "social", "web"], modes={}, public_base_url=BASE)
    for ids in planned.values():
        batch = claim(session, delivery_ids=ids, lease_s=60, public_base_url=BASE)
        session.commit()
        record_results(session, sent=send_claimed(batch, channels=channels))
        session.commit()


def sms_recipients(session, alert_id):
    stmt = sa.select(Delivery.subscriber_id).where(Delivery.alert_id == alert_id, Delivery.channel == "sms",
                                                   Delivery.state == "sent")
    return set(session.scalars(stmt))


def test_actual_is_refused_outside_production_and_nothing_changes(session, world):
    team, _ = world
    alert = service.create_alert(session, data=AlertCreate(**alert_payload("Actual")), author=team["operator"],
                                 sender="s")
    service.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    session.commit()
    with pytest.raises(ActualNotAllowedHere):
        service.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=False)
    session.rollback()
    assert session.get(Alert, alert.id).state == "submitted"


def test_cancel_references_the_original_and_reaches_exactly_its_recipients(session, world):
    team, subs = world
    original = publish(session, team)
    reached = sms_recipients(session, original.id)
    assert reached == set(subs["palu"])
    # Someone registers in Palu after the original went out: the Cancel must not surprise them.
    newcomer = subscribers.add_subscriber(session, phone="+6281299900099", admin_code="72.71.01.1004")
    session.commit()

    cancel = service.create_follow_up(session, original_id=original.id, actor=team["approver"],
                                      msg_type=MsgType.CANCEL, reason="Air sudah surut")
    session.commit()
    assert cancel.msg_type == "Cancel" and cancel.references_alert_id == original.id
    assert cancel.references == capmap.reference_of(original)
    assert cancel.references.split(",")[1] == original.identifier
    service.submit_alert(session, alert_id=cancel.id, actor=team["approver"])
    session.commit()
    with pytest.raises(TwoPersonRule):
        service.approve_alert(session, alert_id=cancel.id, approver=team["approver"], production=False)
    session.rollback()
    service.approve_alert(session, alert_id=cancel.id, approver=team["admin"], production=False)
    session.commit()
    deliver(session, cancel.id)
    session.refresh(original)
    assert original.state == "cancelled" and cancel.state == "published"
    assert sms_recipients(session, cancel.id) == reached
    assert newcomer.id not in sms_recipients(session, cancel.id)
    texts = session.scalars(sa.select(OutboxMessage.text).join(Delivery).where(Delivery.alert_id == cancel.id))
    assert all("DIBATALKAN" in t or "CANCELLED" in t for t in texts)
    xml = validation.parse_cap(service.export_cap(cancel))
    assert xml.msg_type == "Cancel" and original.identifier in xml.references
    actions = [e.action for e in audit.entries_for(session, subject_type="alert", subject_id=original.id)]
    assert actions[-1] == "alert.cancel"
    # A cancelled alert cannot be followed up again.
    with pytest.raises(InvalidTransition):
        service.create_follow_up(session, original_id=original.id, actor=team["operator"],
                                 msg_type=MsgType.UPDATE)


def test_update_reaches_the_original_recipients_plus_the_new_area(session, world):
    team, subs = world
    original = publish(session, team)
    update = service.create_follow_up(session, original_id=original.id, actor=team["operator"],
                                      msg_type=MsgType.UPDATE)
    session.commit()
    payload = alert_payload("Exercise", codes=["72.71", "72.03"])
    service.edit_draft(session, alert_id=update.id, data=AlertCreate(**payload), actor=team["approver"])
    session.commit()
    with pytest.raises(service.OutsideJurisdiction):  # Donggala is outside the Palu operator's reach
        service.submit_alert(session, alert_id=update.id, actor=team["operator"])
    session.rollback()
    service.submit_alert(session, alert_id=update.id, actor=team["approver"])
    session.commit()
    with pytest.raises(TwoPersonRule):  # apv.sulteng edited this version: a third person must approve
        service.approve_alert(session, alert_id=update.id, approver=team["approver"], production=False)
    session.rollback()
    service.approve_alert(session, alert_id=update.id, approver=team["admin"], production=False)
    session.commit()
    deliver(session, update.id)
    session.refresh(original)
    assert original.state == "superseded"
    assert sms_recipients(session, update.id) == set(subs["palu"]) | set(subs["donggala"])


def test_correction_is_an_update_in_one_step(session, world):
    team, _ = world
    original = publish(session, team)
    correction = service.create_follow_up(session, original_id=original.id, actor=team["operator"],
                                          msg_type=MsgType.UPDATE, correction=True, reason="salah jam")
    session.commit()
    assert correction.msg_type == "Update" and correction.state == "draft"
    assert correction.note.startswith("Koreksi / Correction")
    assert [i.headline for i in correction.infos] == [i.headline for i in original.infos]
    assert [a.geocodes for a in correction.areas] == [a.geocodes for a in original.areas]


def test_follow_up_of_a_draft_is_refused(session, world):
    team, _ = world
    draft = service.create_alert(session, data=AlertCreate(**alert_payload("Exercise")), author=team["operator"],
                                 sender="s")
    session.commit()
    with pytest.raises(InvalidTransition):
        service.create_follow_up(session, original_id=draft.id, actor=team["operator"], msg_type=MsgType.CANCEL)


def test_nothing_is_sent_after_expiry_with_a_frozen_clock(session, world):
    team, _ = world
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        expires = (start + timedelta(minutes=30)).isoformat()
        alert = service.create_alert(session, data=AlertCreate(**alert_payload("Exercise", expires=expires)),
                                     author=team["operator"], sender="s")
        service.submit_alert(session, alert_id=alert.id, actor=team["operator"])
        service.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=False)
        session.commit()
        planned = plan_alert(session, alert_id=alert.id)
        session.commit()
        clock.shift(timedelta(minutes=31))  # the batch reaches a worker after the alert expired
        batch = claim(session, delivery_ids=planned["sms"], lease_s=60, public_base_url=BASE)
        session.commit()
        assert batch.items == []
        states = set(session.scalars(sa.select(Delivery.state).where(Delivery.channel == "sms")))
        assert states == {"skipped"}
        assert session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0
        plan = sweep(session)
        session.commit()
        assert plan.expired == [alert.id]
        assert session.get(Alert, alert.id).state == "expired"


def test_expiry_in_the_past_is_refused_at_creation(session, world):
    team, _ = world
    with pytest.raises(InvalidTimes):
        service.create_alert(session, data=AlertCreate(**alert_payload(
            "Exercise", expires=(utcnow() - timedelta(minutes=1)).isoformat())), author=team["operator"], sender="s")


@pytest.mark.parametrize("folder", ["cap/oasis_examples", "cap/real_world"])
def test_import_then_export_keeps_the_message(session, world, folder):
    team, _ = world
    for path in sorted((FIXTURES / folder).iterdir()):
        result = cap_documents.import_document(session, path.read_bytes(), author=team["admin"], origin="cap-import",
                                           fetch=None, name=path.name)
        session.commit()
        if path.name == "rs_rhmss_thunderstorm_update.xml":
            assert result.imported == [] and "polygon" in result.skipped[0].reason
            continue
        assert len(result.imported) == 1, (path.name, result.skipped)
        alert = session.get(Alert, result.imported[0])
        source = validation.parse_cap(path.read_bytes())
        again = validation.parse_cap(service.export_cap(alert))
        assert (again.identifier, again.status, again.msg_type) == (source.identifier, source.status,
                                                                    source.msg_type)
        assert [i.language for i in again.infos] == [i.language for i in source.infos]
        assert [[a.area_desc for a in i.areas] for i in again.infos] == [
            [a.area_desc for a in i.areas] for i in source.infos]
        assert alert.state == "draft" and alert.origin == "cap-import"
    # Importing the same files again stores nothing new.
    before = session.scalar(sa.select(sa.func.count()).select_from(Alert))
    path = next((FIXTURES / folder).iterdir())
    again = cap_documents.import_document(session, path.read_bytes(), author=team["admin"], origin="cap-import",
                                      fetch=None)
    assert again.imported == [] and "already imported" in again.skipped[0].reason
    assert session.scalar(sa.select(sa.func.count()).select_from(Alert)) == before


def test_import_rejects_every_invalid_file_and_stores_nothing(session, world):
    team, _ = world
    for path in sorted((FIXTURES / "cap/invalid").iterdir()):
        result = cap_documents.import_document(session, path.read_bytes(), author=team["admin"], origin="cap-import",
                                           fetch=None, name=path.name)
        assert result.imported == [] and result.skipped[0].reason
    session.commit()
    assert session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0


def test_feeds_import_embedded_and_index_entries(session, world):
    team, _ = world
    embedded = cap_documents.import_document(session, (FIXTURES / "cap/feeds/gcl_amber.atom").read_bytes(),
                                         author=team["admin"], origin="cap-import", fetch=None)
    index = cap_documents.import_document(session, (FIXTURES / "cap/feeds/gcl_weather_index.atom").read_bytes(),
                                      author=team["admin"], origin="cap-import", fetch=None)
    links = cap_documents.import_document(session, (FIXTURES / "cap/feeds/gcl_ny_index.rss").read_bytes(),
                                      author=team["admin"], origin="cap-import", fetch=None)
    session.commit()
    assert len(embedded.imported) == 1 and len(index.imported) == 2
    assert links.imported == [] and all("not fetched" in s.reason for s in links.skipped)
    for alert_id in embedded.imported + index.imported:
        validation.parse_cap(service.export_cap(session.get(Alert, alert_id)))  # every draft exports valid CAP
