"""Public pages first: planning commits an approved alert's publish (what public pages and feeds read) before it
touches the subscriber index, whatever the alert's channels, so a cold or busy index never delays the web."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from broadcast.alerts import service as alerts
from broadcast.alerts.models import Alert
from broadcast.alerts.schemas import AlertCreate
from broadcast.dispatch import plan
from broadcast.dispatch.models import Delivery
from broadcast.subscribers import warm
from tests.factories import alert_payload, make_subscribers, make_team

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("channels", [["sms"], ["sms", "social", "web"], ["web", "sms"]])
def test_the_publish_is_its_own_first_part_before_any_targeting(session, monkeypatch, channels):
    team = make_team(session)
    subs = make_subscribers(session)
    payload = alert_payload("Actual")
    payload["channels"] = channels
    alert = alerts.create_alert(session, data=AlertCreate(**payload), author=team["operator"], sender="t@x")
    alerts.submit_alert(session, alert_id=alert.id, actor=team["operator"])
    alerts.approve_alert(session, alert_id=alert.id, approver=team["approver"], production=True)
    session.commit()
    matched: list[str] = []
    real_snapshot = warm.snapshot

    def snapshot(s):  # type: ignore[no-untyped-def]
        matched.append(s.scalar(sa.select(Alert.state).where(Alert.id == alert.id)))
        return real_snapshot(s)

    monkeypatch.setattr(warm, "snapshot", snapshot)
    parts = plan.plan_alert_stream(session, alert_id=alert.id)
    first = next(parts)
    # The caller commits this part before asking for the next: nothing but the publish is in it.
    assert first == {}
    assert matched == []
    assert session.scalar(sa.select(Alert.state).where(Alert.id == alert.id)) == "published"
    assert session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 0
    session.commit()
    rest = list(parts)
    session.commit()
    assert matched == ["published"]  # targeting ran once, after the publish
    planned = {ch: ids for part in rest for ch, ids in part.items()}
    sms = set(session.scalars(sa.select(Delivery.subscriber_id).where(Delivery.channel == "sms")))
    assert sms == set(subs["palu"]) and planned["sms"]
    assert session.scalar(sa.select(Alert.planned_at).where(Alert.id == alert.id)) is not None
