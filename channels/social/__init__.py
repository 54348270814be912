"""Social media channels: public posts per alert. X now; each further network is one more module here."""

from __future__ import annotations

from channels.social.accounts import choose_account, code_contains
from channels.social.x import (
    X_BASIC_APP_POSTS_24H,
    X_BASIC_USER_POSTS_24H,
    CapCheck,
    DuplicatePost,
    MentionsPoll,
    PostedThread,
    RateLimited,
    XAccount,
    XConfig,
    XConnection,
    XPost,
    check_posting_caps,
    map_x_error,
    poll_mentions,
    poll_search,
)
from channels.social.x_render import MAX_WEIGHT, ThreadPost, XRenderer, hashtags, weighted_length
from channels.text import place_names

__all__ = [
    "MAX_WEIGHT",
    "X_BASIC_APP_POSTS_24H",
    "X_BASIC_USER_POSTS_24H",
    "CapCheck",
    "DuplicatePost",
    "MentionsPoll",
    "PostedThread",
    "RateLimited",
    "ThreadPost",
    "XAccount",
    "XConfig",
    "XConnection",
    "XPost",
    "XRenderer",
    "check_posting_caps",
    "choose_account",
    "code_contains",
    "hashtags",
    "map_x_error",
    "place_names",
    "poll_mentions",
    "poll_search",
    "weighted_length",
]
