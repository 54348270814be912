"""Fetching documents that feeds link to: http(s) only, bounded in size and time."""

from __future__ import annotations

import httpx

from broadcast.alerts.cap import MAX_DOCUMENT_BYTES


def fetch_url(url: str, *, timeout_s: float = 10.0) -> bytes:
    """The body at `url`.

    Raises: OSError (not http(s), HTTP error, too large, unreachable).
    """
    if not url.startswith(("http://", "https://")):
        raise OSError(f"not an http(s) URL: {url}")
    try:
        with httpx.stream("GET", url, timeout=timeout_s, follow_redirects=True) as response:
            response.raise_for_status()
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise OSError(f"{url}: document larger than {MAX_DOCUMENT_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise OSError(f"{url}: {exc}") from exc
    return body
