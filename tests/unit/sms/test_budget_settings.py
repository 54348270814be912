"""The SMS budget settings reach every renderer the service builds: one configured renderer for preview and send."""

import pytest
from pydantic import ValidationError

from broadcast.dispatch.wiring import build_active_channels, configured_renderers
from broadcast.settings import Settings
from broadcast.trust.wiring import reply_renderers
from channels.sms import SmsRenderer


def test_default_budget_follows_severity_and_a_setting_overrides_it():
    default = configured_renderers(Settings(environment="test"))["sms"]
    assert isinstance(default, SmsRenderer) and default.max_segments is None
    assert dict(default.severity_budgets) == {"Extreme": 3, "Severe": 3}
    fixed = Settings(environment="test", twilio={"max_segments": 2, "segments_by_severity": {"Moderate": 2}})
    renderer = configured_renderers(fixed)["sms"]
    assert renderer.max_segments == 2 and dict(renderer.severity_budgets) == {"Moderate": 2}


def test_sending_previews_and_cek_get_the_same_renderer_configuration(monkeypatch):
    monkeypatch.setenv("BROADCAST_TWILIO__MAX_SEGMENTS", "2")
    monkeypatch.setenv("BROADCAST_TWILIO__PRICE_PER_SEGMENT", "0.07")
    settings = Settings(environment="test")
    sent = build_active_channels(settings)["sms"].renderer
    for renderer in (configured_renderers(settings)["sms"], reply_renderers(settings)["sms"]):
        assert vars(renderer) == vars(sent)
        assert renderer.max_segments == 2 and str(renderer.price_per_segment) == "0.07"


@pytest.mark.parametrize("bad", [{"Severe": 4}, {"Severe": 0}, {"Terrible": 2}])
def test_bad_severity_budgets_are_refused(bad):
    with pytest.raises(ValidationError, match="segments_by_severity"):
        Settings(environment="test", twilio={"segments_by_severity": bad})
