"""An alert's audience before sending: how many subscribers and people its area reaches, and its map."""

from __future__ import annotations

from typing import Any

import shapely
from sqlalchemy.orm import Session

from broadcast.alerts import service, target_area
from broadcast.alerts.models import Alert
from broadcast.alerts.schemas import AreaSpec
from broadcast.subscribers import targeting, warm
from broadcast.users.models import User
from geo import mapimage
from geo.reach import estimate_reach


def reach_of(session: Session, target: target_area.AreaTarget, *, jurisdiction: str | None = None) -> dict[str, Any]:
    """Matched active subscribers inside `jurisdiction` per personal channel ("any": on any;
    "outside_jurisdiction": matched outside it, never sent to) and the estimated population reached."""
    subs = warm.snapshot(session)
    counts = targeting.count_per_channel(
        subs, targeting.TargetSpec(target.codes, target.drawn), jurisdiction=jurisdiction
    )
    geom = target.geometry
    people = estimate_reach(geom) if geom is not None else None
    return {
        "subscribers": counts,
        "population": 0 if people is None else people.total,
        "by_kabupaten": []
        if people is None
        else [
            {"kode": p.kode, "nama": p.nama, "fraction": round(p.fraction, 4), "estimated": p.estimated}
            for p in people.parts
        ],
    }


def alert_reach(session: Session, *, alert: Alert) -> dict[str, Any]:
    """The reach of a stored alert's areas, limited to the personal channels the alert uses."""
    from broadcast.dispatch.plan import delivery_scope

    shared, scope = delivery_scope(session, alert)
    out = reach_of(session, target_area.target_of(alert), jurisdiction=scope)
    if not shared:
        out["subscribers"] = {"any": 0, "outside_jurisdiction": out["subscribers"]["any"]}
    keep = ("any", "outside_jurisdiction", *alert.channels)
    out["subscribers"] = {ch: n for ch, n in out["subscribers"].items() if ch in keep}
    return out


def resolve_for_composer(session: Session, *, spec: AreaSpec, user: User) -> dict[str, Any]:
    """An area as the composer shows it: whole target, CAP geometry, warnings and reach; checked against the
    user's jurisdiction like a saved alert.

    Raises: InvalidGeometry, OutsideJurisdiction.
    """
    resolved = target_area.resolve_area(spec)
    service.check_areas_jurisdiction(user, [resolved])
    geom = resolved.geometry
    return {
        "target": None if geom is None else shapely.geometry.mapping(geom),
        "codes": list(resolved.codes),
        "cap_polygons": []
        if resolved.cap is None
        else [
            {"cap": text, "vertices": len(p.exterior.coords)}
            for text, p in zip(resolved.cap.cap_strings(), resolved.cap.polygons, strict=True)
        ],
        "cap_circles": [dict(c) for c in resolved.circles],
        "overshoot_m": None if resolved.cap is None else round(resolved.cap.overshoot_m, 1),
        "overshoot_target_met": None if resolved.cap is None else resolved.cap.target_met,
        "warnings": list(resolved.warnings),
        "reach": reach_of(session, target_area.target_of_areas([resolved]), jurisdiction=user.jurisdiction),
    }


def alert_map_geojson(alert: Alert) -> dict[str, Any]:
    """A FeatureCollection of the alert's whole target (role "target") and its CAP polygons (role "cap")."""
    target = target_area.target_of(alert)
    geom = target.geometry
    if geom is None:
        return {"type": "FeatureCollection", "features": []}
    return mapimage.map_geojson(geom, target_area.cap_geometry_of(alert), target.codes)


def alert_map_png(alert: Alert) -> bytes | None:
    """A PNG map of the alert's target with kabupaten outlines and its CAP polygons; None without geometry."""
    geom = target_area.target_of(alert).geometry
    if geom is None:
        return None
    title = "; ".join(a.area_desc for a in alert.areas)[:120]
    return mapimage.render_png(geom, target_area.cap_geometry_of(alert), title=title)
