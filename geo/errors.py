"""The one error type of the geo package: a machine code plus a bilingual human message."""

from __future__ import annotations


class GeoError(ValueError):
    """Bad or unusable geographic input; `code` is short and stable, the message is Indonesian / English."""

    def __init__(self, code: str, id_msg: str, en_msg: str) -> None:
        self.code = code
        self.message_id = id_msg
        self.message_en = en_msg
        super().__init__(f"{id_msg} / {en_msg}")
