"""The public accountability dashboard: open data computed from the database, with no personal data.

Every row is an aggregate. Counts from 1 to 4 are suppressed ("<5" in CSV, null in JSON) and so is any median
computed from fewer than 5 items, so no single citizen or message can be picked out. Only Actual alerts count;
exercises and tests have their own dataset (EXERCISE_STATUSES), shown in a separate, clearly marked LATIHAN view.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcast import csvexport
from broadcast.alerts.models import Alert, AlertInfo, CapStatus
from broadcast.audit.models import AuditEntry
from broadcast.dispatch.models import Delivery, DeliveryState
from broadcast.reports.models import Report
from broadcast.trust.models import TrustReply
from geo import gazetteer

LICENCE = "CC BY 4.0"
LICENCE_URL = "https://creativecommons.org/licenses/by/4.0/"
MIN_COUNT = 5
COLUMNS = ("dataset", "month", "kabupaten_code", "kabupaten", "hazard", "channel", "count", "value")
ACTUAL_STATUSES = (CapStatus.ACTUAL.value,)
EXERCISE_STATUSES = (CapStatus.EXERCISE.value, CapStatus.TEST.value)
SUCCESS = (DeliveryState.SENT.value, DeliveryState.DELIVERED.value)
FAILURE = (DeliveryState.FAILED.value, DeliveryState.UNDELIVERED.value)


@dataclass(frozen=True, slots=True)
class Row:
    """One aggregate: a count (None when suppressed) and, for timings and rates, a value (minutes or percent)."""

    dataset: str
    month: str = ""
    kabupaten_code: str = ""
    kabupaten: str = ""
    hazard: str = ""
    channel: str = ""
    count: int | None = None
    value: float | None = None


def suppress(count: int) -> int | None:
    """The count, or None when it is 1-4 (small enough to point at someone)."""
    return None if 0 < count < MIN_COUNT else count


def _month(when: datetime | None) -> str:
    return when.strftime("%Y-%m") if when is not None else ""


def _kabupaten(code: str) -> tuple[str, str]:
    kab = ".".join(code.split(".")[:2])
    place = gazetteer.find_place(kab)
    return kab, place.nama if place is not None else ""


def _issued(session: Session, statuses: tuple[str, ...]) -> list[Alert]:
    stmt = select(Alert).where(Alert.published_at.is_not(None), Alert.status.in_(statuses))
    return list(session.scalars(stmt.order_by(Alert.published_at)))


def _hazard(alert: Alert) -> str:
    info: AlertInfo | None = alert.infos[0] if alert.infos else None
    if info is None:
        return ""
    return info.hazard or info.event.strip().lower()


def alerts_issued(session: Session, statuses: tuple[str, ...] = ACTUAL_STATUSES) -> list[Row]:
    """Alerts (Actual unless `statuses` says otherwise) published, per month, kabupaten/kota and hazard (an alert
    over two kabupaten counts in each)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for alert in _issued(session, statuses):
        kabs = {_kabupaten(c)[0] for a in alert.areas for c in a.geocodes if len(c.split(".")) >= 2}
        for kab in kabs or {""}:
            counts[(_month(alert.published_at), kab, _hazard(alert))] += 1
    return [
        Row("alerts_issued", month, kab, _kabupaten(kab)[1] if kab else "", hazard, count=suppress(n))
        for (month, kab, hazard), n in sorted(counts.items())
    ]


def _median_row(dataset: str, minutes: list[float], **keys: str) -> Row:
    n = len(minutes)
    if n < MIN_COUNT:
        return Row(dataset, count=suppress(n), value=None, **keys)
    return Row(dataset, count=n, value=round(statistics.median(minutes), 1), **keys)


def bmkg_to_alert(session: Session, statuses: tuple[str, ...] = ACTUAL_STATUSES) -> list[Row]:
    """Median minutes from a BMKG item (its effective/onset time, else when we read it) to the published alert."""
    minutes: dict[str, list[float]] = defaultdict(list)
    for alert in _issued(session, statuses):
        if alert.origin != "bmkg" or alert.published_at is None:
            continue
        info = alert.infos[0] if alert.infos else None
        start = (info.effective or info.onset) if info is not None else None
        start = start or alert.created_at
        minutes[_month(alert.published_at)].append(max(0.0, (alert.published_at - start).total_seconds() / 60))
    return [_median_row("bmkg_to_alert_minutes", m, month=month) for month, m in sorted(minutes.items())]


def _first_audit(session: Session, actions: Iterable[str] | None = None) -> dict[int, datetime]:
    stmt = select(AuditEntry.subject_id, func.min(AuditEntry.at)).where(AuditEntry.subject_type == "report")
    if actions is not None:
        stmt = stmt.where(AuditEntry.action.in_(list(actions)))
    return {sid: at for sid, at in session.execute(stmt.group_by(AuditEntry.subject_id)) if sid is not None}


def _first_actioned(session: Session) -> dict[int, datetime]:
    """When each report was first moved to `actioned` (reports.triage.transition audits every move)."""
    stmt = (
        select(AuditEntry.subject_id, AuditEntry.at, AuditEntry.after)
        .where(AuditEntry.subject_type == "report", AuditEntry.action == "report.state")
        .order_by(AuditEntry.id)
    )
    first: dict[int, datetime] = {}
    for sid, at, after in session.execute(stmt):
        if sid is not None and isinstance(after, dict) and after.get("state") == "actioned":
            first.setdefault(sid, at)
    return first


def report_timings(session: Session) -> list[Row]:
    """Median minutes from a citizen report to its first triage step and to a response, per month received.

    Triage is the first audited step on the report; a response is its first move to `actioned` or the reply
    telling the citizen it was acted on.
    """
    triaged = _first_audit(session)
    responded = _first_actioned(session)
    replies = select(TrustReply.subject, func.min(TrustReply.created_at)).where(TrustReply.kind == "actioned")
    for subject, at in session.execute(replies.group_by(TrustReply.subject)):
        rid = int(subject.split(":", 1)[1]) if subject.startswith("report:") else None
        if rid is not None and (rid not in responded or at < responded[rid]):
            responded[rid] = at
    to_triage: dict[str, list[float]] = defaultdict(list)
    to_response: dict[str, list[float]] = defaultdict(list)
    stmt = select(Report.id, Report.received_at).where(Report.command.is_(None))
    for rid, received in session.execute(stmt):
        if rid in triaged:
            to_triage[_month(received)].append(max(0.0, (triaged[rid] - received).total_seconds() / 60))
        if rid in responded:
            to_response[_month(received)].append(max(0.0, (responded[rid] - received).total_seconds() / 60))
    return [_median_row("report_to_triage_minutes", m, month=k) for k, m in sorted(to_triage.items())] + [
        _median_row("report_to_response_minutes", m, month=k) for k, m in sorted(to_response.items())
    ]


def delivery_rates(session: Session, statuses: tuple[str, ...] = ACTUAL_STATUSES) -> list[Row]:
    """Per channel and month: messages settled (sent/delivered vs failed/undelivered) and the success percentage."""
    stmt = (
        select(Delivery.channel, Alert.published_at, Delivery.state, func.count())
        .join(Alert, Alert.id == Delivery.alert_id)
        .where(Alert.status.in_(statuses), Delivery.state.in_(SUCCESS + FAILURE))
        .group_by(Delivery.channel, Alert.published_at, Delivery.state)
    )
    ok: Counter[tuple[str, str]] = Counter()
    total: Counter[tuple[str, str]] = Counter()
    for channel, published, state, n in session.execute(stmt):
        key = (_month(published), channel)
        total[key] += n
        if state in SUCCESS:
            ok[key] += n
    rows = []
    for (month, channel), n in sorted(total.items()):
        shown = suppress(n)
        rate = round(100.0 * ok[(month, channel)] / n, 1) if shown is not None and n else None
        rows.append(Row("delivery_success_percent", month, channel=channel, count=shown, value=rate))
    return rows


def dataset(session: Session) -> list[Row]:
    """Every row of the open dataset, in a stable order."""
    return alerts_issued(session) + bmkg_to_alert(session) + report_timings(session) + delivery_rates(session)


def exercise_dataset(session: Session) -> list[Row]:
    """The same aggregates over exercises and tests only (citizen reports are real, so they stay out of it)."""
    return (
        alerts_issued(session, EXERCISE_STATUSES)
        + bmkg_to_alert(session, EXERCISE_STATUSES)
        + delivery_rates(session, EXERCISE_STATUSES)
    )


def to_csv(rows: Iterable[Row]) -> str:
    """The rows as CSV (suppressed counts as "<5", missing values empty; formula-like text neutralised)."""

    def cells(r: Row) -> list[object]:
        count = "<5" if r.count is None else str(r.count)
        value = "" if r.value is None else f"{r.value:g}"
        return [r.dataset, r.month, r.kabupaten_code, r.kabupaten, r.hazard, r.channel, count, value]

    return csvexport.to_csv(COLUMNS, (cells(r) for r in rows), lineterminator="\n")


def to_json(rows: Iterable[Row], *, generated_at: datetime, source_url: str) -> dict[str, object]:
    """The rows as JSON with the licence and the suppression rule stated."""
    return {
        "licence": LICENCE,
        "licence_url": LICENCE_URL,
        "source": source_url,
        "generated_at": generated_at.isoformat(),
        "suppression": f"counts 1-{MIN_COUNT - 1} and medians of fewer than {MIN_COUNT} items are null",
        "columns": list(COLUMNS),
        "rows": [asdict(r) for r in rows],
    }


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    shown: str


def bar_chart_svg(bars: list[Bar], *, title: str, unit: str = "", width: int = 640) -> str:
    """A horizontal bar chart as inline SVG (no script, readable without CSS); labels are escaped."""
    from markupsafe import escape

    row_h, label_w, pad = 22, 200, 6
    height = max(1, len(bars)) * row_h + 30
    top = max((b.value for b in bars), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="100%" viewBox="0 0 {width} {height}" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, b in enumerate(bars):
        y = 20 + i * row_h
        w = (width - label_w - 80) * (b.value / top)
        parts.append(
            f'<text x="{label_w - pad}" y="{y + 15}" text-anchor="end" font-size="12">{escape(b.label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="#b3261e"></rect>'
            f'<text x="{label_w + w + pad:.1f}" y="{y + 15}" font-size="12">{escape(b.shown)}{escape(unit)}</text>'
        )
    if not bars:
        parts.append('<text x="10" y="20" font-size="12">Belum ada data / no data yet</text>')
    parts.append("</svg>")
    return "".join(parts)


def charts(rows: list[Row]) -> dict[str, str]:
    """The dashboard's charts: alerts per month, per hazard, per kabupaten, and delivery success per channel."""

    def totals(key: str) -> list[Bar]:
        sums: Counter[str] = Counter()
        hidden: set[str] = set()
        for r in rows:
            if r.dataset != "alerts_issued":
                continue
            label = getattr(r, key) or "-"
            if key == "kabupaten_code":
                label = f"{r.kabupaten or '-'} ({r.kabupaten_code})" if r.kabupaten_code else "-"
            if r.count is None:
                hidden.add(label)
            else:
                sums[label] += r.count
        labels = sorted(set(sums) | hidden)
        return [Bar(lbl, sums[lbl], str(sums[lbl]) + (" (+<5)" if lbl in hidden else "")) for lbl in labels]

    delivery = [
        Bar(f"{r.channel} {r.month}", r.value or 0.0, "<5 pesan" if r.value is None else f"{r.value:g}")
        for r in rows
        if r.dataset == "delivery_success_percent"
    ]
    return {
        "per_month": bar_chart_svg(totals("month"), title="Peringatan per bulan / alerts per month"),
        "per_hazard": bar_chart_svg(totals("hazard"), title="Peringatan per bahaya / alerts per hazard"),
        "per_kabupaten": bar_chart_svg(totals("kabupaten_code"), title="Peringatan per kabupaten/kota"),
        "delivery": bar_chart_svg(delivery, title="Keberhasilan pengiriman / delivery success", unit="%"),
    }
