"""The real PetaBencana.id flood reports of Jakarta, 20-22 February 2017 (package data), for the demo replay and
the benchmark. Credit PetaBencana.id wherever they are shown (see data/petabencana/SOURCES.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data" / "petabencana"
WIB = timezone(timedelta(hours=7))
EXTERNAL_PREFIX = "petabencana:"  # external_id of every replayed report: how the dashboard knows demo data is in
CREDIT = "Data: PetaBencana.id (CogniCity, MIT Urban Risk Lab / Yayasan Peta Bencana)"


@dataclass(frozen=True, slots=True)
class PetaBencanaReport:
    """One report as PetaBencana.id recorded it."""

    key: str
    created_at: datetime
    text: str
    lat: float
    lon: float
    depth_cm: int | None
    platform: str  # grasp (chatbot), qlue, detik
    image_url: str | None
    feature: dict[str, object]


@lru_cache(maxsize=1)
def load_reports() -> tuple[PetaBencanaReport, ...]:
    """All 1,204 reports in time order."""
    out = []
    for path in sorted(DATA.glob("petabencana.id_jbd_reports_*.geojson")):
        for n, feature in enumerate(json.loads(path.read_text(encoding="utf-8"))["features"]):
            props = feature["properties"]
            lon, lat = feature["geometry"]["coordinates"][:2]
            created = datetime.fromisoformat(props["created_at"]).replace(tzinfo=WIB)
            depth = (props.get("report_data") or {}).get("flood_depth")
            out.append(
                PetaBencanaReport(
                    key=f"{path.stem[-10:]}-{n}",
                    created_at=created,
                    text=props.get("text") or "",
                    lat=float(lat),
                    lon=float(lon),
                    depth_cm=int(depth) if isinstance(depth, int | float) else None,
                    platform=props.get("source") or "",
                    image_url=props.get("image_url"),
                    feature=feature,
                )
            )
    return tuple(sorted(out, key=lambda r: (r.created_at, r.key)))
