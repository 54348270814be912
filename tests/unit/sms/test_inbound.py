import base64
import hashlib
import hmac
from urllib.parse import urlencode

import pytest

from channels.sms import (
    DeliveryState,
    InvalidCallback,
    SmsRenderer,
    TwilioSms,
    parse_form,
    parse_inbound,
    parse_status_callback,
    validate_signature,
)

TOKEN = "12345678901234567890123456789012"
BASE = "https://bpbd.example.id"
PATH = "/webhooks/twilio/sms"
INBOUND = {
    "MessageSid": "SM" + "1" * 32,
    "SmsSid": "SM" + "1" * 32,
    "AccountSid": "AC" + "2" * 32,
    "MessagingServiceSid": "MG" + "3" * 32,
    "From": "+6281234567890",
    "To": "+6281100000001",
    "Body": "LAPOR banjir 50 cm di RT 03",
    "NumMedia": "0",
    "NumSegments": "1",
    "ToCity": "",  # Twilio sends blank fields; they are signed too
}


def twilio_signature(url: str, form: dict[str, str], token: str = TOKEN) -> str:
    # Independent of the SDK: Twilio's documented scheme, base64(HMAC-SHA1(token, url + sorted k+v)).
    payload = url + "".join(k + form[k] for k in sorted(form))
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def check(signature, *, query="", body=None, base=BASE, path=PATH, token=TOKEN):
    return validate_signature(
        token,
        public_base_url=base,
        path=path,
        raw_query=query,
        raw_body=urlencode(INBOUND) if body is None else body,
        signature=signature,
    )


def test_valid_signature_on_the_configured_public_url():
    sig = twilio_signature(BASE + PATH, INBOUND)
    assert check(sig)
    assert check(sig, body=urlencode(INBOUND).encode())  # raw bytes as a route reads them


def test_valid_signature_with_a_query_string():
    sig = twilio_signature(BASE + PATH + "?tenant=sigi&x=1", INBOUND)
    assert check(sig, query="tenant=sigi&x=1")
    assert not check(sig)  # a lost query breaks it


def test_forged_or_missing_signatures_fail():
    assert not check(twilio_signature(BASE + PATH, INBOUND, token="someone-elses-token"))
    assert not check(None)
    assert not check("")
    tampered = urlencode({**INBOUND, "Body": "BERHENTI"})
    assert not check(twilio_signature(BASE + PATH, INBOUND), body=tampered)
    assert not check(twilio_signature(BASE + PATH, INBOUND), token="")


@pytest.mark.parametrize(
    "signed_url",
    [
        "http://bpbd.example.id" + PATH,  # scheme as seen behind a TLS proxy
        "http://10.0.0.5:8000" + PATH,  # the internal host:port
        BASE + PATH + "/",  # trailing slash
    ],
)
def test_signature_for_another_url_fails(signed_url):
    assert not check(twilio_signature(signed_url, INBOUND))


def test_dropping_a_blank_field_breaks_the_signature():
    sig = twilio_signature(BASE + PATH, INBOUND)
    without_blank = {k: v for k, v in INBOUND.items() if v}
    assert not check(sig, body=urlencode(without_blank))
    assert parse_form(urlencode(INBOUND))["ToCity"] == ""


def test_parse_inbound_sms():
    event = parse_inbound(INBOUND)
    assert event is not None
    assert (event.source, event.external_id, event.sender, event.text) == (
        "sms",
        INBOUND["MessageSid"],
        "+6281234567890",
        "LAPOR banjir 50 cm di RT 03",
    )
    assert event.raw["NumSegments"] == "1"
    ch = TwilioSms(SmsRenderer(), client=None, sender_numbers=("+1",))  # type: ignore[arg-type]
    assert ch.parse_inbound(INBOUND) == event


def test_parse_inbound_ignores_status_callbacks_and_junk():
    assert (
        parse_inbound({"MessageSid": "SM1", "MessageStatus": "delivered", "From": "+1", "To": "+2"}) is None
    )
    assert parse_inbound({"From": "+1", "Body": "x"}) is None
    assert parse_inbound({}) is None


def callback(status, code=None, **extra):
    form = {
        "MessageSid": "SM" + "9" * 32,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC1",
        "From": "+6281100000001",
        "To": "+6281234567890",
        **extra,
    }
    if code is not None:
        form["ErrorCode"] = str(code)
    return form


@pytest.mark.parametrize(
    ("status", "code", "state", "permanent", "final"),
    [
        ("sent", None, DeliveryState.IN_PROGRESS, False, False),
        ("sending", None, DeliveryState.IN_PROGRESS, False, False),
        ("delivered", None, DeliveryState.DELIVERED, False, True),
        ("read", None, DeliveryState.DELIVERED, False, True),
        ("undelivered", 30003, DeliveryState.UNDELIVERED, False, True),
        ("undelivered", 30008, DeliveryState.UNDELIVERED, False, True),
        ("undelivered", 30005, DeliveryState.UNDELIVERED, True, True),
        ("undelivered", 30007, DeliveryState.UNDELIVERED, True, True),
        ("failed", 21610, DeliveryState.FAILED, True, True),
        ("failed", 30006, DeliveryState.FAILED, True, True),
        ("failed", None, DeliveryState.FAILED, False, True),  # unknown cause: if in doubt, send again
        ("canceled", None, DeliveryState.FAILED, True, True),
    ],
)
def test_status_callbacks(status, code, state, permanent, final):
    update = parse_status_callback(callback(status, code), raw_query="delivery=4242")
    assert update.provider_id == "SM" + "9" * 32
    assert update.delivery_id == "4242"
    assert (update.state, update.permanent, update.final, update.error_code) == (
        state,
        permanent,
        final,
        code,
    )


def test_status_callback_keeps_other_query_params_apart():
    assert parse_status_callback(callback("delivered"), raw_query="k=v&delivery=77").delivery_id == "77"
    assert parse_status_callback(callback("delivered"), raw_query="").delivery_id is None


@pytest.mark.parametrize(
    "form",
    [
        {"MessageStatus": "delivered"},
        {"MessageSid": "SM1"},
        {"MessageSid": "SM1", "MessageStatus": "teleported"},
        {"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "abc"},
    ],
)
def test_malformed_status_callbacks_are_refused(form):
    with pytest.raises(InvalidCallback):
        parse_status_callback(form, raw_query="delivery=1")
