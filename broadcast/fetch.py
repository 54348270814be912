"""Fetching documents that feeds link to: through the outbound guard (broadcast.outbound), bounded in size and
time."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from broadcast import outbound
from broadcast.cap.codec import MAX_DOCUMENT_BYTES


def fetch_url(url: str, *, timeout_s: float = 10.0, allow: Sequence[str] | None = None) -> bytes:
    """The body at `url`; redirects are followed, each hop checked like the first (`allow`: hosts allowed
    although private, default the setting BROADCAST_OUTBOUND_ALLOW_HOSTS).

    Raises: OSError (not http(s), a forbidden address, HTTP error, too large, unreachable).
    """
    try:
        outbound.check_url(url, allow=allow)
        client = outbound.client(allow=allow, timeout_s=timeout_s, follow_redirects=True)
        with client, client.stream("GET", url) as response:
            response.raise_for_status()
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise OSError(f"{url}: document larger than {MAX_DOCUMENT_BYTES} bytes")
    except outbound.ForbiddenURL as exc:
        raise OSError(f"{url}: {exc.reason}") from exc
    except httpx.HTTPError as exc:
        raise OSError(f"{url}: {exc}") from exc
    return body
