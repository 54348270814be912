"""Hazard message templates: a few fields in, Indonesian and English info blocks out."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from broadcast.alerts.schemas import InfoIn
from broadcast.errors import Invalid, NotFound
from templates import TEMPLATES_DIR

HAZARD_DIR = TEMPLATES_DIR / "hazards"
LANGUAGES = (("id", "id-ID"), ("en", "en-US"))
BLOCKS = ("headline", "description", "instruction")


@dataclass(frozen=True)
class HazardField:
    name: str
    label_id: str
    label_en: str
    required: bool
    example: str


@dataclass(frozen=True)
class Hazard:
    key: str
    name_id: str
    name_en: str
    category: str
    urgency: str
    severity: str
    certainty: str
    fields: tuple[HazardField, ...]


class UnknownHazard(NotFound):
    code = "unknown-hazard"


class MissingFields(Invalid):
    code = "missing-fields"


@lru_cache(maxsize=1)
def _catalog() -> dict[str, Hazard]:
    raw = tomllib.loads((HAZARD_DIR / "catalog.toml").read_text(encoding="utf-8"))
    return {
        key: Hazard(
            key=key,
            **{k: v for k, v in spec.items() if k != "fields"},
            fields=tuple(HazardField(**f) for f in spec["fields"]),
        )
        for key, spec in raw.items()
    }


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(HAZARD_DIR),
        autoescape=False,  # noqa: S701 - plain text
        undefined=StrictUndefined,
        keep_trailing_newline=False,
    )


def catalog() -> list[Hazard]:
    """Every hazard template, in catalogue order."""
    return list(_catalog().values())


def get_hazard(key: str) -> Hazard:
    """The hazard with this key.

    Raises: UnknownHazard.
    """
    hazard = _catalog().get(key)
    if hazard is None:
        raise UnknownHazard(f"Jenis bencana '{key}' tidak dikenal / unknown hazard; known: {', '.join(_catalog())}")
    return hazard


def render(key: str, fields: dict[str, str], localized: dict[str, dict[str, str]] | None = None) -> list[InfoIn]:
    """Info blocks in id-ID then en-US, filled from the template; the operator may edit every text.

    `localized` gives a field a value per language ({"waktu": {"id": "Senin, 7 Desember …", "en": "Mon 7 Dec …"}}),
    so each block is wholly in its own language; it overrides `fields` for that field.

    Raises: UnknownHazard, MissingFields (a required field is empty, or a field is unknown).
    """
    localized = localized or {}
    fields = {**fields, **{name: per_lang.get("id", "") for name, per_lang in localized.items()}}
    hazard = get_hazard(key)
    known = {f.name for f in hazard.fields}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise MissingFields(f"Isian tidak dikenal / unknown fields: {', '.join(unknown)}")
    values = {f.name: " ".join(str(fields.get(f.name, "")).split()) for f in hazard.fields}
    missing = [f.name for f in hazard.fields if f.required and not values[f.name]]
    if missing:
        raise MissingFields(f"Isian wajib kosong / required fields missing: {', '.join(missing)}")
    infos = []
    for short, language in LANGUAGES:
        template = _env().get_template(f"{key}.{short}.j2")
        own = {name: " ".join(per_lang.get(short, "").split()) for name, per_lang in localized.items()}
        context = template.new_context({**values, **own})
        texts = {b: " ".join("".join(template.blocks[b](context)).split()) for b in BLOCKS}
        infos.append(
            InfoIn(
                language=language,
                category=hazard.category,  # type: ignore[arg-type]
                event=hazard.name_id if short == "id" else hazard.name_en,
                urgency=hazard.urgency,  # type: ignore[arg-type]
                severity=hazard.severity,  # type: ignore[arg-type]
                certainty=hazard.certainty,  # type: ignore[arg-type]
                headline=texts["headline"][:160],
                description=texts["description"],
                instruction=texts["instruction"],
                hazard=key,
            )
        )
    return infos
