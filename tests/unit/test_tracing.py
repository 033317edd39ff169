"""services/common/tracing.py: off unless an OTLP endpoint is configured (and then nothing is
built), the OTEL_* variables as an input boundary, the guard on trace headers, the token's
redaction."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.common import tracing
from shared.settings import ConfigurationError

pytestmark = pytest.mark.unit

VARIABLES = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "APP_ENV",
]


def test_without_an_endpoint_tracing_stays_off_and_builds_nothing() -> None:
    environ = {"OTEL_SERVICE_NAME": "x", "OTEL_BSP_SCHEDULE_DELAY": "1"}
    assert tracing.setup("notifier", environ) is None
    assert not tracing.enabled() and tracing.provider() is None
    assert tracing.broker_middlewares() == ()
    assert tracing.current() is None
    with tracing.span("anything", attributes={"a": 1}) as span:
        assert span is None
    assert tracing.span("a") is tracing.span("b")  # one shared no-op, nothing made per call


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "http://collector:4318"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c/v1/traces"}, "https://c/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, None),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": ""},
            "http://c:4318",
        ),
    ],
)
def test_the_endpoint_decides(environ: dict[str, str], expected: str | None) -> None:
    assert tracing.endpoint(environ) == expected


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:port"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "grpc://c"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    ],
)
def test_an_unusable_setting_is_a_configuration_error_naming_it(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        tracing.endpoint(environ)


@given(st.dictionaries(st.sampled_from(VARIABLES), st.text(max_size=40)))
def test_any_otel_variables_give_an_endpoint_none_or_an_error_naming_the_variable(
    environ: dict[str, str],
) -> None:
    try:
        found = tracing.endpoint(environ)
    except ConfigurationError as exc:
        # One of two fixed sentences, naming the variable and never repeating its value (an
        # endpoint's user info may hold a secret).
        name, _, said = str(exc).partition(" ")
        assert name.rstrip(":") in VARIABLES
        assert said in ("must be an http:// or https:// URL", "only http/protobuf is supported")
        return
    assert found is None or found.startswith(("http://", "https://"))
    attributes = tracing.resource_attributes("notifier", environ)
    assert attributes["service.name"] and attributes["service.namespace"] == "sns-telegram"


def test_the_service_name_is_per_service_unless_overridden() -> None:
    assert tracing.resource_attributes("linker", {})["service.name"] == "sns-telegram-linker"
    named = tracing.resource_attributes("linker", {"OTEL_SERVICE_NAME": "edge-linker"})
    assert named["service.name"] == "edge-linker"
    assert (
        tracing.resource_attributes("x", {"APP_ENV": "staging"})["deployment.environment.name"]
        == "staging"
    )


def test_the_token_is_not_in_a_span_url() -> None:
    url = tracing.redacted_url("https://api.telegram.org/bot{token}/{method}", "sendMessage")
    assert url == "https://api.telegram.org/botREDACTED/sendMessage"


HEADER_VALUES = st.one_of(
    st.text(max_size=700),
    st.binary(max_size=40),
    st.integers(),
    st.floats(),
    st.none(),
    st.booleans(),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.binary(max_size=5)), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@given(
    st.dictionaries(
        st.one_of(st.sampled_from(tracing.TRACE_HEADERS), st.text(max_size=10)),
        HEADER_VALUES,
        max_size=6,
    )
)
def test_only_text_trace_headers_reach_the_propagators(headers: dict[str, Any]) -> None:
    safe = tracing.safe_trace_headers(headers)
    for name, value in headers.items():
        if name in tracing.TRACE_HEADERS:
            assert name not in safe or (isinstance(value, str) and len(value) <= 512)
        else:
            assert safe[name] is value  # the other headers are left alone
    # What remains never makes the propagator raise (garbage text is simply no context).
    TraceContextTextMapPropagator().extract(safe)
