"""Map between stored alerts and CAP messages, both ways, without losing what a round trip needs."""

from __future__ import annotations

from datetime import datetime

from broadcast.alerts.models import Alert, AlertArea, AlertInfo
from broadcast.alerts.target_area import lenient_geometry
from broadcast.cap import codec
from broadcast.cap.codec import CapArea, CapInfo, CapMessage, CapResource


def reference_of(alert: Alert) -> str:
    """The CAP `references` entry naming `alert`: sender,identifier,sent."""
    if alert.sent is None:
        raise ValueError("an alert is referenced only once it has been sent")
    return f"{alert.sender},{alert.identifier},{codec.format_time(alert.sent)}"


def _area_to_cap(area: AlertArea) -> CapArea:
    polygons = [" ".join(f"{lat},{lon}" for lat, lon in ring) for ring in area.polygons]
    circles = [f"{c['lat']},{c['lon']} {codec.format_number(c['radius_km'])}" for c in area.circles]
    geocodes = [(codec.KEMENDAGRI, code) for code in area.geocodes]
    geocodes += [(g["valueName"], g["value"]) for g in area.other_geocodes]
    return CapArea(area.area_desc, polygons, circles, geocodes, area.altitude, area.ceiling)


def alert_to_message(alert: Alert, *, sent: datetime | None = None) -> CapMessage:
    """The CAP message of a stored alert; `sent` stands in for a draft that has no send time yet."""
    sent = alert.sent or sent
    if sent is None:
        raise ValueError("alert has no CAP sent time yet")
    infos = []
    for info in alert.infos:
        areas = [_area_to_cap(a) for a in alert.areas if a.info_position is None or a.info_position == info.position]
        infos.append(
            CapInfo(
                language=info.language,
                categories=info.category.split(),
                event=info.event,
                response_types=list(info.response_types),
                urgency=info.urgency,
                severity=info.severity,
                certainty=info.certainty,
                audience=info.audience,
                event_codes=[(c["valueName"], c["value"]) for c in info.event_codes],
                effective=info.effective,
                onset=info.onset,
                expires=info.expires,
                sender_name=info.sender_name,
                headline=info.headline,
                description=info.description or None,
                instruction=info.instruction or None,
                web=info.web,
                contact=info.contact,
                parameters=[(p["valueName"], p["value"]) for p in info.parameters],
                resources=[CapResource(**r) for r in info.resources],
                areas=areas,
            )
        )
    return CapMessage(
        identifier=alert.identifier,
        sender=alert.sender,
        sent=sent,
        status=alert.status,
        msg_type=alert.msg_type,
        scope=alert.scope,
        source=alert.source,
        restriction=alert.restriction,
        addresses=alert.addresses,
        codes=list(alert.codes),
        note=alert.note,
        references=alert.references,
        incidents=alert.incidents,
        infos=infos,
    )


def _parse_polygon(text: str) -> list[list[float]] | None:
    try:
        ring = [[float(v) for v in point.split(",")] for point in text.split()]
    except ValueError:
        return None
    return ring if all(len(p) == 2 for p in ring) else None


def _parse_circle(text: str) -> dict[str, float] | None:
    try:
        centre, radius = text.split()
        lat, lon = (float(v) for v in centre.split(","))
        return {"lat": lat, "lon": lon, "radius_km": float(radius)}
    except ValueError:
        return None


def _area_from_cap(area: CapArea, position: int | None) -> AlertArea:
    kemendagri = [v for k, v in area.geocodes if k.upper() == codec.KEMENDAGRI]
    others = [{"valueName": k, "value": v} for k, v in area.geocodes if k.upper() != codec.KEMENDAGRI]
    polygons = [p for p in (_parse_polygon(t) for t in area.polygons) if p is not None]
    circles = [c for c in (_parse_circle(t) for t in area.circles) if c is not None]
    return AlertArea(
        area_desc=area.area_desc,
        geocodes=kemendagri,
        polygons=polygons,
        circles=circles,
        target_geometry=lenient_geometry(polygons, circles),
        other_geocodes=others,
        altitude=area.altitude,
        ceiling=area.ceiling,
        info_position=position,
    )


def _area_key(area: CapArea) -> tuple[object, ...]:
    return (
        area.area_desc,
        tuple(area.polygons),
        tuple(area.circles),
        tuple(area.geocodes),
        area.altitude,
        area.ceiling,
    )


def message_to_parts(msg: CapMessage) -> tuple[dict[str, object], list[AlertInfo], list[AlertArea]]:
    """Alert columns, info rows and area rows for a CAP message.

    Areas shared by every info block are stored once; otherwise each is tied to its info block.
    """
    columns: dict[str, object] = {
        "identifier": msg.identifier,
        "sender": msg.sender,
        "sent": msg.sent,
        "status": msg.status,
        "msg_type": msg.msg_type,
        "scope": msg.scope,
        "source": msg.source,
        "restriction": msg.restriction,
        "addresses": msg.addresses,
        "codes": list(msg.codes),
        "note": msg.note,
        "references": msg.references,
        "incidents": msg.incidents,
        "expires": min((i.expires for i in msg.infos if i.expires), default=None),
    }
    infos = [
        AlertInfo(
            position=n,
            language=i.language,
            category=" ".join(i.categories) or "Other",
            event=i.event,
            urgency=i.urgency,
            severity=i.severity,
            certainty=i.certainty,
            onset=i.onset,
            expires=i.expires,
            headline=i.headline or i.event,
            description=i.description or "",
            instruction=i.instruction or "",
            web=i.web,
            contact=i.contact,
            parameters=[{"valueName": k, "value": v} for k, v in i.parameters],
            response_types=list(i.response_types),
            audience=i.audience,
            event_codes=[{"valueName": k, "value": v} for k, v in i.event_codes],
            effective=i.effective,
            sender_name=i.sender_name,
            resources=[r.__dict__.copy() for r in i.resources],
        )
        for n, i in enumerate(msg.infos)
    ]
    keys = [[_area_key(a) for a in i.areas] for i in msg.infos]
    shared = all(k == keys[0] for k in keys)
    if shared and msg.infos:
        areas = [_area_from_cap(a, None) for a in msg.infos[0].areas]
    else:
        areas = [_area_from_cap(a, n) for n, i in enumerate(msg.infos) for a in i.areas]
    return columns, infos, areas
