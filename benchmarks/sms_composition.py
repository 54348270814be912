"""What each hazard template's SMS carries, composed by priority at the default budget (by severity), against a
flat one-segment budget (the previous default, where the text was cut until it fitted).

For every hazard template (its example fields, an Exercise in Palu) and language it prints: the budget and
segments used, how many instruction and description sentences the SMS carries, and whether the first
instruction sentence would have fitted one segment at all (when it does not, a one-segment SMS cut it).

    python benchmarks/sms_composition.py
"""

from __future__ import annotations

from broadcast.alerts import hazards
from channels.base import AlertData, InfoData
from channels.sms import SmsRenderer, sms_segments
from channels.text import sentences

LINK = "https://peringatan.bpbd-palu.go.id/p/12345"


def alert_for(key: str) -> AlertData:
    hazard = hazards.get_hazard(key)
    infos = tuple(
        InfoData(i.language, i.event, i.category, i.urgency, i.severity, i.certainty, i.headline, i.description,
                 i.instruction)
        for i in hazards.render(key, {f.name: f.example for f in hazard.fields})
    )  # fmt: skip
    return AlertData(
        id=12345, identifier="BCAST-1", sender="bpbd@palu", status="Exercise", msg_type="Alert", sent=None,
        expires=None, area_desc="Kecamatan Palu Barat, Kota Palu", public_url=LINK, short_url=LINK, infos=infos,
        verify_code="7KQ2MX",
    )  # fmt: skip


def count_in(text: str, parts: list[str]) -> int:
    return sum(1 for p in parts if p.rstrip(".!?") in text)


def main() -> None:
    by_severity, one = SmsRenderer(), SmsRenderer(max_segments=1)
    header = ("hazard", "lang", "severity", "budget", "segs", "instr", "desc", "1-seg instr", "1-seg action fits")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    totals = {"rows": 0, "whole_default": 0, "whole_one": 0, "action_one": 0}
    for hazard in hazards.catalog():
        alert = alert_for(hazard.key)
        for info in alert.infos:
            text = by_severity.marked_text(alert, info.language)
            flat = one.marked_text(alert, info.language)
            instr, desc = sentences(info.instruction), sentences(info.description)
            fitted = one.fit(alert, info.language)
            got, got_one = count_in(text, instr), count_in(flat, instr)
            totals["rows"] += 1
            totals["whole_default"] += got == len(instr)
            totals["whole_one"] += got_one == len(instr)
            totals["action_one"] += fitted.action_fits
            print(
                " | ".join(
                    str(v)
                    for v in (
                        hazard.key, info.language, info.severity, by_severity.budget_for(alert),
                        sms_segments(text).segments, f"{got}/{len(instr)}", f"{count_in(text, desc)}/{len(desc)}",
                        f"{got_one}/{len(instr)}",
                        "yes" if fitted.action_fits else f"no (sent as {sms_segments(flat).segments})",
                    )
                )
            )  # fmt: skip
    n = totals["rows"]
    print()
    print(f"whole instruction at the severity budget: {totals['whole_default']}/{n} messages")
    print(f"whole instruction at one segment:        {totals['whole_one']}/{n} messages")
    print(f"first instruction sentence fits one segment (else a one-segment SMS cut it): {totals['action_one']}/{n}")


if __name__ == "__main__":
    main()
