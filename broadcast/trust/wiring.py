"""Building the trust features' collaborators from settings (entrypoints only): the CAP key, SMS renderer."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from broadcast.cap.signing import KeyPair, create_dev_keypair, load_keypair
from broadcast.dispatch.wiring import configured_renderers
from broadcast.settings import Settings
from channels.base import Renderer
from channels.registry import ChannelConfigError

log = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _keypair(key_path: Path, cert_path: Path, dev: bool, common_name: str) -> KeyPair:
    if dev and not (key_path.exists() and cert_path.exists()):
        return create_dev_keypair(key_path.parent, common_name=common_name)
    return load_keypair(key_path, cert_path)


def cap_keypair(settings: Settings) -> KeyPair | None:
    """The key CAP is signed with: configured, or a development pair under data_dir; None when production has none."""
    paths = settings.cap_signing_keypair_paths
    if paths is None:
        return None
    dev = not (settings.cap_signing.key_path and settings.cap_signing.cert_path)
    return _keypair(paths[0], paths[1], dev, settings.sender_id)


def reply_renderers(settings: Settings) -> dict[str, Renderer]:
    """The renderers as the fan-out builds them (same segment budget), so /cek re-renders the exact texts."""
    try:
        return configured_renderers(settings)
    except ChannelConfigError:
        log.warning("channel renderer settings invalid; /cek uses the defaults")
        return {}
