"""Web: the public alert page on our own site. Publishing makes the page and feed entry visible."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime

from channels.base import (
    AlertData,
    Audience,
    Channel,
    ChannelLimits,
    OutboundMessage,
    Renderer,
    status_mark,
)


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


ATOM_NS = "http://www.w3.org/2005/Atom"


def atom_feed(alerts: Sequence[AlertData], *, feed_url: str, title: str, updated: datetime, site_url: str) -> bytes:
    """An Atom 1.0 feed of these alerts, one entry each, linking to the public page."""
    ET.register_namespace("", ATOM_NS)

    def el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        node = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            node.text = text
        return node

    feed = ET.Element(f"{{{ATOM_NS}}}feed", {"xml:lang": "id"})
    el(feed, "id", feed_url)
    el(feed, "title", title)
    el(feed, "updated", updated.isoformat())
    el(feed, "link", href=feed_url, rel="self", type="application/atom+xml")
    el(feed, "link", href=site_url, rel="alternate", type="text/html")
    author = el(feed, "author")
    el(author, "name", "BPBD")
    for alert in alerts:
        info = alert.infos[0]
        mark = status_mark(alert.status, info.language)
        entry = el(feed, "entry")
        el(entry, "id", alert.public_url)
        el(entry, "title", f"[{mark}] {info.headline}" if mark else info.headline)
        stamp = (alert.sent or updated).isoformat()
        el(entry, "updated", stamp)
        el(entry, "published", stamp)
        el(entry, "link", href=alert.public_url, rel="alternate", type="text/html")
        entry_author = el(entry, "author")
        el(entry_author, "name", alert.sender)
        el(entry, "summary", f"{info.event} · {info.severity} · {alert.area_desc}")
        el(entry, "category", term=info.severity, label="severity")
        el(entry, "category", term=alert.status, label="status")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
