"""The X channel's settings (`BROADCAST_X__*`) and the one place they become its adapter config."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr

from channels.social.x import X_BASIC_USER_POSTS_24H, XAccount, XConfig


class XAccountSettings(BaseModel):
    """One agency account on X; the key it is stored under in `XSettings.accounts` is its Kemendagri code."""

    handle: str
    user_id: str = ""
    access_token: str = ""
    access_token_secret: SecretStr = SecretStr("")
    posts_per_24h: int = 100


class XSettings(BaseModel):
    """The X channel's settings: the app key, the national account and agency accounts by code."""

    consumer_key: str = ""
    consumer_secret: SecretStr = SecretStr("")
    access_token: str = ""
    access_token_secret: SecretStr = SecretStr("")
    # The account the top-level tokens belong to (the national/fallback account, code "").
    handle: str = ""
    user_id: str = ""
    # App-only token for reading mentions; empty means reads use the user tokens.
    bearer_token: SecretStr = SecretStr("")
    # Agency accounts by Kemendagri code ("72.71" Kota Palu, "72" Sulawesi Tengah); JSON in the env var.
    accounts: dict[str, XAccountSettings] = {}
    app_posts_per_24h: int = 1667
    timeout_s: float = 10.0
    # Public posts to read as reports, e.g. "banjir OR longsor OR gempa Palu"; empty turns the search off.
    search_query: str = ""

    @property
    def configured(self) -> bool:
        """True when there is an app key and at least one account (national or regional) to post as."""
        has_account = bool(self.access_token) or any(a.access_token for a in self.accounts.values())
        return bool(self.consumer_key and has_account)

    def to_config(self) -> XConfig | None:
        """These settings as the X adapter's config (national account first, then regional ones); None without
        accounts."""
        accounts: list[XAccount] = []
        if self.access_token:
            accounts.append(
                XAccount(
                    code="",
                    handle=self.handle,
                    user_id=self.user_id,
                    access_token=self.access_token,
                    access_token_secret=self.access_token_secret.get_secret_value(),
                    posts_per_24h=X_BASIC_USER_POSTS_24H,
                )
            )
        for code, account in self.accounts.items():
            accounts.append(
                XAccount(
                    code=code,
                    handle=account.handle,
                    user_id=account.user_id,
                    access_token=account.access_token,
                    access_token_secret=account.access_token_secret.get_secret_value(),
                    posts_per_24h=account.posts_per_24h,
                )
            )
        if not accounts:
            return None
        return XConfig(
            consumer_key=self.consumer_key,
            consumer_secret=self.consumer_secret.get_secret_value(),
            accounts=tuple(accounts),
            bearer_token=self.bearer_token.get_secret_value(),
            app_posts_per_24h=self.app_posts_per_24h,
            timeout_s=self.timeout_s,
        )
