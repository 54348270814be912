"""Schemathesis over the whole OpenAPI schema, signed in as an admin: no 500s, no answer that breaks the
schema (status codes, content types, bodies), no schema-valid request refused, no invalid one accepted.

Bounded for CI: a fixed number of examples per operation (BROADCAST_FUZZ_EXAMPLES, default 25), generated
deterministically (derandomize), in-process over ASGI.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error, positive_data_acceptance

from tests.reliability.helpers import world

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("BROADCAST_FUZZ_EXAMPLES", "25"))
# Server-sent event streams stay open (the progress stream until deliveries settle, the reports stream for ten
# minutes): the matrix covers their authorisation.
SKIP = {"/api/v1/alerts/{alert_id}/progress/stream", "/api/v1/reports/stream"}
# /readyz answers its documented 503 here: no Celery worker runs during this test.
MAY_BE_UNAVAILABLE = {"/readyz"}
# The public report form checks what no schema can say (a signed fill-time token, a honeypot, a parsable phone
# number): a schema-valid but robot-made submission is refused with the form page again (documented 422).
# The hoax form likewise needs a signed single-use token.
FORM_CHECKED = {"/lapor", "/lapor-hoaks"}


def test_fuzz_every_operation(db_url, redis_url, engine, record):
    with world(db_url, redis_url, engine) as w:
        schema = schemathesis.openapi.from_asgi("/api/openapi.json", w.client.app)
        auth = w.headers("admin")
        failures: dict[str, str] = {}
        operations = 0
        for result in schema.get_all_operations():
            op = result.ok()
            if op.path in SKIP:
                continue
            operations += 1
            calls = 0

            @given(case=op.as_strategy())
            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            def run(case) -> None:  # type: ignore[no-untyped-def]
                nonlocal calls
                calls += 1
                response = case.call(headers=auth)
                unavailable = case.operation.path in MAY_BE_UNAVAILABLE and response.status_code == 503
                excluded = [not_a_server_error] if unavailable else []
                if case.operation.path in FORM_CHECKED:
                    excluded.append(positive_data_acceptance)
                case.validate_response(response, excluded_checks=excluded)

            try:
                run()
            except BaseException as exc:  # schemathesis raises an ExceptionGroup of every distinct failure
                if isinstance(exc, KeyboardInterrupt):
                    raise
                failures[op.label] = str(exc)[:2000]
            record(
                "API fuzzing (schemathesis)",
                "generated requests per operation, as admin",
                "failure" if op.label in failures else "no 500, schema-conformant",
                ok=op.label not in failures,
                tries=calls,
            )
        assert operations > 30
        assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
