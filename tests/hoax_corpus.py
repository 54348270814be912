"""A synthetic corpus of forwarded fakes for the hoax-grouping test and benchmark: `n` texts from a few rumours,
each forwarded with the usual changes (Fwd:, case, punctuation, a greeting, a different number), plus one-offs."""

from __future__ import annotations

import random

RUMOURS = [
    "Awas BMKG gempa 9 SR dan tsunami di Palu malam ini jam 23.00 segera mengungsi ke bukit sebarkan ke keluarga",
    "Bantuan tunai Rp 5 juta untuk korban banjir Grobogan daftar di link ini sebelum besok pakai KTP dan KK",
    "Bendungan Sermo jebol air bah menuju Sleman warga Kulon Progo diminta mengungsi sekarang juga",
    "Vaksin di posko pengungsian Sigi mengandung racun jangan mau disuntik kata dokter dari Jakarta",
    "Gunung Merapi akan meletus besar dalam dua jam radius 20 km harus kosong pesan dari BNPB pusat",
    "Air PDAM Donggala tercemar mayat korban likuefaksi jangan diminum sampai pengumuman berikutnya",
]
FILLER = ("mohon", "segera", "info", "dari", "teman", "grup", "RT", "kantor", "penting", "valid", "A1", "sebarkan")


def hoax_texts(n: int, *, seed: int = 24, long: bool = True) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for k in range(n):
        if k % 10 == 9:  # a one-off: words of its own
            words = [f"kata{rnd.randrange(10**6)}" for _ in range(rnd.randint(8, 30))]
            out.append(" ".join(words))
            continue
        base = RUMOURS[k % len(RUMOURS)]
        text = base.replace("23.00", f"{rnd.randint(19, 23)}.00") if rnd.random() < 0.5 else base
        if rnd.random() < 0.5:
            text = "Fwd: " + text
        if rnd.random() < 0.5:
            text = text.upper()
        if rnd.random() < 0.5:
            text = text + "!!! " + " ".join(rnd.sample(FILLER, 2))
        if long:  # forwarded chains carry signatures and earlier forwards: up to the 2,000-character limit
            text = (text + " ") * rnd.randint(1, 12)
        out.append(text.strip()[:2000])
    return out
