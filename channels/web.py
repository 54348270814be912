"""Web: the public alert page on our own site. Publishing makes the page and feed entry visible."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from email.utils import format_datetime

from channels.base import (
    AlertData,
    Audience,
    Channel,
    ChannelLimits,
    OutboundMessage,
    RateBucket,
    Renderer,
    status_mark,
)
from channels.spec import BuildContext, ChannelSpec


class WebRenderer(Renderer):
    name = "web"
    audience = Audience.PUBLIC

    def render_text(self, alert: AlertData, language: str) -> str:
        return alert.info_for(language).headline


class WebPage(Channel):
    """Our own public pages and feeds: sending means the page is live. Never retries."""

    mode = "live"
    limits = ChannelLimits(rate_per_second=1000.0, burst=1000, max_batch=1)

    def __init__(self, renderer: Renderer, *, public_base_url: str) -> None:
        super().__init__(renderer)
        self.public_base_url = public_base_url.rstrip("/")

    def send(self, message: OutboundMessage) -> str:
        return message.recipient or self.public_base_url

    def rate_buckets(self, message: OutboundMessage) -> tuple[list[RateBucket], int]:
        """Our own site: no provider limit to respect."""
        return [], 1


def _web_renderer(config: None) -> WebRenderer:
    return WebRenderer()


def _web_page(config: None, renderer: Renderer, ctx: BuildContext) -> Channel:
    return WebPage(renderer, public_base_url=ctx.public_base_url)


WEB = ChannelSpec(
    name="web",
    audience=Audience.PUBLIC,
    renderer=_web_renderer,
    sender=_web_page,
    limits=WebPage.limits,
    always_live=True,
)

ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MEDIA = "application/cap+xml"


def cap_url(alert: AlertData) -> str:
    """Where the alert's CAP 1.2 document is served, beside its public page."""
    base = alert.public_url.split("/peringatan/")[0]
    return f"{base}/cap/{alert.identifier}.xml"


def _title(alert: AlertData) -> str:
    info = alert.infos[0]
    mark = status_mark(alert.status, info.language)
    change = {"Update": "PEMBARUAN: ", "Cancel": "DIBATALKAN: ", "Correction": "KOREKSI: "}.get(alert.kind, "")
    return f"{f'[{mark}] ' if mark else ''}{change}{info.headline}"


def _rfc3339(when: datetime) -> str:
    """A feed timestamp in whole seconds, like CAP's: "2026-11-26T19:03:13+00:00"."""
    return when.replace(microsecond=0).isoformat()


def atom_feed(alerts: Sequence[AlertData], *, feed_url: str, title: str, updated: datetime, site_url: str) -> bytes:
    """An Atom 1.0 feed, one entry per alert linking its page and its CAP document (the index form
    Google Public Alerts and the IFRC Alert Hub ingest)."""
    ET.register_namespace("", ATOM_NS)

    def el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        node = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            node.text = text
        return node

    feed = ET.Element(f"{{{ATOM_NS}}}feed", {"xml:lang": "id"})
    el(feed, "id", feed_url)
    el(feed, "title", title)
    el(feed, "updated", _rfc3339(updated))
    el(feed, "link", href=feed_url, rel="self", type="application/atom+xml")
    el(feed, "link", href=site_url, rel="alternate", type="text/html")
    author = el(feed, "author")
    el(author, "name", "BPBD")
    for alert in alerts:
        info = alert.infos[0]
        entry = el(feed, "entry")
        el(entry, "id", alert.public_url)
        el(entry, "title", _title(alert))
        stamp = _rfc3339(alert.sent or updated)
        el(entry, "updated", stamp)
        el(entry, "published", stamp)
        el(entry, "link", href=cap_url(alert), rel="alternate", type=CAP_MEDIA)
        el(entry, "link", href=alert.public_url, rel="related", type="text/html")
        entry_author = el(entry, "author")
        el(entry_author, "name", alert.sender)
        el(entry, "summary", f"{info.event} · {info.severity} · {alert.area_desc}")
        el(entry, "category", term=info.severity, label="severity")
        el(entry, "category", term=alert.status, label="status")
        el(entry, "category", term=alert.msg_type, label="msgType")
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)  # bytes for any encoding but "unicode"
    return document


def rss_feed(alerts: Sequence[AlertData], *, feed_url: str, title: str, updated: datetime, site_url: str) -> bytes:
    """An RSS 2.0 feed of the same alerts; each item encloses its CAP document."""
    rss = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(rss, "channel")
    for tag, text in (
        ("title", title),
        ("link", site_url),
        ("description", title),
        ("language", "id"),
        ("lastBuildDate", format_datetime(updated)),
    ):
        ET.SubElement(channel, tag).text = text
    for alert in alerts:
        info = alert.infos[0]
        item = ET.SubElement(channel, "item")
        ET.SubElement(item, "title").text = _title(alert)
        ET.SubElement(item, "link").text = alert.public_url
        ET.SubElement(item, "description").text = f"{info.description} {info.instruction}".strip()
        ET.SubElement(item, "guid", {"isPermaLink": "false"}).text = alert.identifier
        ET.SubElement(item, "pubDate").text = format_datetime(alert.sent or updated)
        ET.SubElement(item, "category").text = info.severity
        ET.SubElement(item, "enclosure", {"url": cap_url(alert), "type": CAP_MEDIA, "length": "0"})
    document: bytes = ET.tostring(rss, encoding="utf-8", xml_declaration=True)
    return document


def json_alert(alert: AlertData) -> dict[str, object]:
    """One alert for the public JSON API; non-Actual alerts say so in two fields, not only in text."""
    return {
        "identifier": alert.identifier,
        "sender": alert.sender,
        "sent": _rfc3339(alert.sent) if alert.sent else None,
        "expires": _rfc3339(alert.expires) if alert.expires else None,
        "status": alert.status,
        "is_exercise_or_test": alert.status != "Actual",
        "msg_type": alert.msg_type,
        "correction": alert.correction,
        "references": alert.references,
        "area": alert.area_desc,
        "area_codes": list(alert.area_codes),
        "url": alert.public_url,
        "cap_url": cap_url(alert),
        "infos": [
            {
                "language": i.language,
                "event": i.event,
                "headline": _title_for(alert, i.headline, i.language),
                "severity": i.severity,
                "urgency": i.urgency,
                "certainty": i.certainty,
                "description": i.description,
                "instruction": i.instruction,
            }
            for i in alert.infos
        ],
    }


def _title_for(alert: AlertData, headline: str, language: str) -> str:
    mark = status_mark(alert.status, language)
    return f"[{mark}] {headline}" if mark else headline
