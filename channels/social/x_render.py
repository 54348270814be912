"""X posts from alert data: weighted length, hashtags, and threads that keep the status mark in every post."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twitter_text import parse_tweet

from channels.base import (
    AlertData,
    Audience,
    InfoData,
    OutboundMessage,
    Preview,
    Recipient,
    Renderer,
    status_mark,
)
from channels.text import change_line, place_names
from templates import message_env

MAX_WEIGHT = 280
# Room kept for the thread counter while splitting; the real "2/3" is never wider.
_COUNTER_RESERVE = "99/99"
STATUS_URL = "https://x.com/i/web/status/{id}"

_NOT_TAG = re.compile(r"\W")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def weighted_length(text: str) -> int:
    """X's weighted length (twitter-text v3: NFC, URL 23, emoji sequence 2, CJK 2); a post may weigh 280."""
    return int(parse_tweet(text).weightedLength)


def fits(text: str) -> bool:
    """True when `text` is one valid X post by length."""
    return weighted_length(text) <= MAX_WEIGHT


def hashtags(event: str, area_desc: str, *, max_places: int = 3) -> list[str]:
    """Hashtags for a hazard and its places, e.g. ["#banjir", "#Palu"]; no duplicates or digit-only tags."""
    candidates = [_NOT_TAG.sub("", event.lower())]
    for name in place_names(area_desc)[:max_places]:
        # CamelCase keeps multi-word places readable as one tag: "Palu Barat" → #PaluBarat.
        candidates.append(_NOT_TAG.sub("", "".join(w[:1].upper() + w[1:] for w in name.split())))
    tags, seen = [], set()
    for tag in candidates:
        # X does not link a tag made only of digits or underscores.
        if not tag.strip("_").strip("0123456789") or tag.casefold() in seen:
            continue
        seen.add(tag.casefold())
        tags.append(f"#{tag}")
    return tags


def _is_regional_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _joins_previous(ch: str, previous: str) -> bool:
    cp = ord(ch)
    return (
        unicodedata.category(ch).startswith("M")  # combining marks, keycaps
        or cp == 0x200D  # zero-width joiner
        or previous.endswith("\u200d")
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors
        or 0x1F3FB <= cp <= 0x1F3FF  # skin tones
        or 0xE0020 <= cp <= 0xE007F  # emoji tag sequences (subdivision flags)
        or (_is_regional_indicator(ch) and len(previous) == 1 and _is_regional_indicator(previous))
    )


def clusters(text: str) -> list[str]:
    """`text` cut into user-perceived characters, so a cut never splits an emoji sequence or accent."""
    out: list[str] = []
    for ch in text:
        if out and _joins_previous(ch, out[-1]):
            out[-1] += ch
        else:
            out.append(ch)
    return out


def _cut_word(word: str, ok: Callable[[str], bool]) -> list[str]:
    pieces, current = [], ""
    for c in clusters(word):
        if current and not ok(current + c):
            pieces.append(current)
            current = ""
        current += c
    return [*pieces, current] if current else pieces


def _pieces(text: str, ok: Callable[[str], bool]) -> list[str]:
    """Sentences that fit alone; a longer sentence becomes its words; a longer word its clusters."""
    out: list[str] = []
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        if ok(sentence):
            out.append(sentence)
            continue
        for word in sentence.split(" "):
            out += [word] if ok(word) else _cut_word(word, ok)
    return [p for p in out if p]


def split_to_fit(text: str, ok: Callable[[str], bool]) -> list[str]:
    """`text` in few ordered chunks that each pass `ok`: cut at sentences, then words, then clusters."""
    chunks: list[str] = []
    current = ""
    for piece in _pieces(text, ok):
        candidate = f"{current} {piece}" if current else piece
        if ok(candidate):
            current = candidate
        else:
            chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks


def shorten(text: str, ok: Callable[[str], bool]) -> str:
    """`text`, or its longest prefix ending in "…" passing `ok` (cut at words, else clusters); may be ""."""
    if ok(text):
        return text
    words = text.split()

    def cut(n: int) -> str:
        return " ".join(words[:n]).rstrip(",;:.") + "…"

    # Fewer words never weigh more, so a binary search finds the longest prefix that passes.
    low, high = 0, len(words) - 1
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if ok(cut(mid)) else (low, mid - 1)
    if low:
        return cut(low)
    best = ""
    for c in clusters(text):
        if not ok(best + c + "…"):
            break
        best += c
    return best + "…" if best else ""


@dataclass(frozen=True, slots=True)
class ThreadPost:
    """One post of an alert's thread, exactly as it will be sent."""

    text: str
    language: str
    weighted_length: int
    has_image: bool = False


def _lang(info: InfoData) -> str:
    return "en" if info.language.lower().startswith("en") else "id"


class XRenderer(Renderer):
    """An alert as an X thread: the lead post in the recipient's language, its continuation, then others."""

    name = "social"
    audience = Audience.PUBLIC

    def render_text(self, alert: AlertData, language: str) -> str:
        """The whole alert as one post in `language`, before the mark and before any split into a thread."""
        info = alert.info_for(language)
        return self._lead(
            alert,
            info,
            headline=info.headline,
            area=alert.area_desc,
            instruction=info.instruction,
            tags=self._tags(alert, info),
            counter="",
        )

    def marked_text(self, alert: AlertData, language: str) -> str:
        """The first post in `language`: marked when not Actual and within 280 weighted characters."""
        return self.language_posts(alert, alert.info_for(language))[0]

    def language_posts(self, alert: AlertData, info: InfoData) -> list[str]:
        """The posts of one language: one when everything fits, else a lead post and the instruction after it.

        The mark is a prefix outside every shortened part, so no cut can remove it.
        """
        lang = _lang(info)
        mark = status_mark(alert.status, lang)
        prefix = f"[{mark}] " if mark else ""
        tags = self._tags(alert, info)
        whole = prefix + self._lead(
            alert,
            info,
            headline=info.headline,
            area=alert.area_desc,
            instruction=info.instruction,
            tags=tags,
            counter="",
        )
        if fits(whole):
            return [whole]

        def cont(chunk: str, counter: str) -> str:
            return prefix + self._template(f"continued.{lang}", chunk=chunk, counter=counter)

        chunks = split_to_fit(info.instruction, lambda c: fits(cont(c, _COUNTER_RESERVE)))
        total = 1 + len(chunks)
        lead = self._fit_lead(alert, info, prefix, tags, counter=f"1/{total}" if chunks else "")
        return [lead, *(cont(c, f"{i}/{total}") for i, c in enumerate(chunks, start=2))]

    def render_thread(self, alert: AlertData, language: str = "id") -> list[ThreadPost]:
        """Every post in order: `language` first (lead, continuation), then each other language as replies."""
        lead_info = alert.info_for(language)
        infos = [lead_info, *(i for i in alert.infos if i is not lead_info)]
        posts: list[ThreadPost] = []
        for info in infos:
            for text in self.language_posts(alert, info):
                image = not posts and alert.map_png is not None
                posts.append(ThreadPost(text, info.language, weighted_length(text), image))
        return posts

    def render(self, alert: AlertData, recipients: Sequence[Recipient]) -> list[OutboundMessage]:
        """One thread per recipient (the public page): first post in `text`, the rest in `thread`.

        Updates and cancels quote the original post; a correction replies to it and links it.
        """
        quote_of, reply_to = self.relation(alert)
        out = []
        for r in recipients:
            posts = self.render_thread(alert, r.language)
            out.append(
                OutboundMessage(
                    recipient=r.address,
                    text=posts[0].text,
                    reference=r.key,
                    language=r.language,
                    thread=tuple(p.text for p in posts[1:]),
                    image_png=alert.map_png,
                    image_alt=self.map_alt(alert, r.language) if alert.map_png is not None else "",
                    quote_of=quote_of,
                    reply_to=reply_to,
                )
            )
        return out

    def preview(self, alert: AlertData) -> list[Preview]:
        """Each post of the thread as it will appear: text, weighted length, whether the map is attached."""
        posts = self.render_thread(alert, alert.infos[0].language)
        return [
            Preview(
                p.language,
                p.text,
                {
                    "position": n,
                    "of": len(posts),
                    "weighted_length": p.weighted_length,
                    "max_weighted_length": MAX_WEIGHT,
                    "has_image": p.has_image,
                },
            )
            for n, p in enumerate(posts, start=1)
        ]

    def relation(self, alert: AlertData) -> tuple[str | None, str | None]:
        """(quote_of, reply_to): updates, cancels and corrections reply to the original post, so whoever
        saw it finds what changed right under it."""
        original = alert.original_provider_ids.get(self.name)
        if original and alert.msg_type in ("Update", "Cancel", "Error"):
            return None, original
        return None, None

    def map_alt(self, alert: AlertData, language: str) -> str:
        """Alt text for the map image, in `language`; X allows 1,000 characters."""
        info = alert.info_for(language)
        return self._template(f"map_alt.{_lang(info)}", alert=alert, info=info)[:1000]

    def _tags(self, alert: AlertData, info: InfoData) -> str:
        return " ".join(hashtags(info.event, alert.area_desc))

    def _fit_lead(self, alert: AlertData, info: InfoData, prefix: str, tags: str, *, counter: str) -> str:
        # Shorten the area list first (the page has it in full), then the headline, then drop the tags;
        # the mark, the change label and the link always stay.
        def lead(headline: str, area: str, tags: str = tags) -> str:
            return prefix + self._lead(
                alert, info, headline=headline, area=area, instruction="", tags=tags, counter=counter
            )

        area = shorten(alert.area_desc, lambda a: fits(lead(info.headline, a)))
        headline = shorten(info.headline, lambda h: fits(lead(h, area)))
        if fits(lead(headline, area)):
            return lead(headline, area)
        headline = shorten(info.headline, lambda h: fits(lead(h, area, "")))
        return lead(headline, area, "")

    def _lead(
        self,
        alert: AlertData,
        info: InfoData,
        *,
        headline: str,
        area: str,
        instruction: str,
        tags: str,
        counter: str,
    ) -> str:
        _, reply_to = self.relation(alert)
        original_link = STATUS_URL.format(id=reply_to) if reply_to and alert.kind == "Correction" else ""
        return self._template(
            f"alert.{_lang(info)}",
            alert=alert,
            info=info,
            headline=headline,
            area=area,
            instruction=instruction,
            hashtags=tags,
            link=alert.public_url,
            original_link=original_link,
            counter=counter,
            change_line=change_line(alert, info.language),
        )

    @staticmethod
    def _template(name: str, **context: Any) -> str:
        return message_env().get_template(f"x/{name}.j2").render(**context).strip()
