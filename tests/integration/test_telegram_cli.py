"""`broadcast telegram set-webhook / webhook-info / delete-webhook`: the real command in a subprocess, the real
python-telegram-bot client, a local fake Bot API."""

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import broadcast_exe, clean_env
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.integration
TOKEN = "123456:TEST-TOKEN"
SECRET = "telegram-webhook-secret-42"
PUBLIC = "https://peringatan.bpbd-palu.example"


def run(fake: FakeTelegram, tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    values = {
        "BROADCAST_DATA_DIR": str(tmp),
        "BROADCAST_PUBLIC_BASE_URL": PUBLIC,
        "BROADCAST_TELEGRAM__BOT_TOKEN": TOKEN,
        "BROADCAST_TELEGRAM__WEBHOOK_SECRET": SECRET,
        "BROADCAST_TELEGRAM__API_BASE_URL": fake.base_url,
        "COLUMNS": "200",
    } | env
    values = {k: v for k, v in values.items() if v}
    return subprocess.run([broadcast_exe(), "telegram", *args], env=clean_env(**values), capture_output=True,
                          text=True, timeout=120, cwd=tmp)


def test_set_webhook_registers_url_secret_and_update_types_then_info_and_delete(tmp_path):
    with FakeTelegram(TOKEN) as fake:
        fake.queue_updates(3)
        done = run(fake, tmp_path, "set-webhook", "--max-connections", "10")
        assert done.returncode == 0, done.stdout + done.stderr
        assert fake.webhook == {"url": f"{PUBLIC}/webhooks/telegram", "secret_token": SECRET,
                                "allowed_updates": ["message"], "max_connections": 10}
        assert "webhook set" in done.stdout and f"{PUBLIC}/webhooks/telegram" in done.stdout
        info = run(fake, tmp_path, "webhook-info")
        assert info.returncode == 0 and "/webhooks/telegram" in info.stdout and "message" in info.stdout
        assert "3" in info.stdout.split("pending updates")[1].splitlines()[0]  # updates waiting at Telegram
        gone = run(fake, tmp_path, "delete-webhook", "--drop-pending")
        assert gone.returncode == 0 and "webhook deleted" in gone.stdout
        assert fake.webhook == {}
        assert "0" in run(fake, tmp_path, "webhook-info").stdout.split("pending updates")[1].splitlines()[0]


def test_set_webhook_refuses_what_telegram_would_refuse_before_calling_it(tmp_path):
    with FakeTelegram(TOKEN) as fake:
        http = run(fake, tmp_path, "set-webhook", "--url", "http://peringatan.example/webhooks/telegram")
        assert http.returncode == 2 and "https://" in http.stdout
        port = run(fake, tmp_path, "set-webhook", "--url", "https://peringatan.example:8080/webhooks/telegram")
        assert port.returncode == 2 and "8443" in port.stdout
        no_secret = run(fake, tmp_path, "set-webhook", BROADCAST_TELEGRAM__WEBHOOK_SECRET="")
        assert no_secret.returncode == 2 and "WEBHOOK_SECRET" in no_secret.stdout
        no_token = run(fake, tmp_path, "webhook-info", BROADCAST_TELEGRAM__BOT_TOKEN="")
        assert no_token.returncode == 2 and "BOT_TOKEN" in no_token.stdout
        assert fake.webhook == {}


def test_a_token_telegram_refuses_exits_1_with_its_reason(tmp_path):
    with FakeTelegram("999:OTHER-TOKEN") as fake:
        refused = run(fake, tmp_path, "set-webhook")
    assert refused.returncode == 1 and "refused the bot token" in refused.stdout
