"""The OpenAPI schema fuzzed with schemathesis against a served linker: no 5xx, ever, and every
response as documented."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tests.infra import isolated_vhost
from tests.linker.helpers import bearer, new_user
from tests.linker.served import ServedLinker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(database_url, servers):
    with isolated_vhost(servers) as rabbitmq_url, ServedLinker(database_url, rabbitmq_url) as s:
        yield s


def excluded(case):
    """A time zone must exist and quiet hours must not be empty: rules JSON Schema cannot
    state, so a schema-valid preferences body may still be a (documented) 422."""
    if case.operation.method.upper() == "PUT" and case.operation.path.endswith("/preferences"):
        return [positive_data_acceptance]
    return []


def test_no_input_makes_a_server_error(served):
    api = schemathesis.openapi.from_url(f"{served.base_url}/openapi.json")
    headers = bearer(new_user())
    operations = [result.ok() for result in api.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "GET /api/telegram/link-account",
        "POST /api/telegram/verify-link",
        "GET /api/telegram/status",
        "POST /api/telegram/send-test-message",
        "POST /api/telegram/unlink-account",
        "GET /api/telegram/preferences",
        "PUT /api/telegram/preferences",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case):
            case.call_and_validate(
                base_url=served.base_url, headers=headers, excluded_checks=excluded(case)
            )

        fuzz()
