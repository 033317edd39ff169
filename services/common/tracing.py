"""Traces with OpenTelemetry: off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and then exported over OTLP http/protobuf.

One event is one trace across the services: `shared.publisher` starts it (or joins the current
one) and puts its context in the AMQP headers (W3C `traceparent`); faststream's telemetry
middleware continues it in the consumer; the notifier's render, delivery and sendMessage request
are children of the event's consume span; a batch is a span of its own with a link to each event
it planned (OpenTelemetry's messaging conventions for batches). The README ("Operations") lists
the spans.

Off, nothing is built: no provider, no exporter, no middleware, and `span` returns a shared no-op
context manager, so the hot path pays one function call per span it would have made.

The standard variables apply (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`, `OTEL_SDK_DISABLED`,
`OTEL_TRACES_SAMPLER`); only http/protobuf is shipped, so `OTEL_EXPORTER_OTLP_PROTOCOL` may name
nothing else. No span attribute carries a secret: the bot token is in aiogram's request URL, so
the notifier's HTTP spans name the URL with `REDACTED` in its place (`redacted_url`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from faststream import BaseMiddleware
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from shared.settings import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

NAMESPACE = "sns-telegram"
TOKEN_MASK = "REDACTED"  # noqa: S105 (what replaces the token)
"""What stands for the bot token in an HTTP span's `url.full` (OpenTelemetry's own word)."""
TRACE_HEADERS = ("traceparent", "tracestate", "baggage")
"""The AMQP headers that carry a trace's context (W3C trace context and baggage)."""
MAX_TRACE_HEADER = 512
"""Longer than any real `traceparent`/`tracestate`/`baggage` value we would continue."""
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_TRUE = re.compile(r"\s*true\s*", re.IGNORECASE)

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_NOTHING = contextlib.nullcontext()


def endpoint(environ: Mapping[str, str]) -> str | None:
    """The OTLP endpoint traces go to, or None (tracing off). Raises `ConfigurationError`
    naming the variable when it is set to something that is not an http(s) URL, or asks for a
    protocol other than http/protobuf."""
    if _TRUE.fullmatch(environ.get("OTEL_SDK_DISABLED", "")):
        return None
    for name in ENDPOINT_VARIABLES:
        value = environ.get(name, "").strip()
        if not value:
            continue
        try:
            parts = urlsplit(value)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is not a number, an unbalanced IPv6 bracket
            valid = False
        if not valid:
            raise ConfigurationError(f"{name} must be an http:// or https:// URL")
        for protocol in _PROTOCOLS:
            if environ.get(protocol, "http/protobuf").strip() not in ("http/protobuf", ""):
                raise ConfigurationError(f"{protocol}: only http/protobuf is supported")
        return value
    return None


def resource_attributes(service: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Who is tracing: the service (`OTEL_SERVICE_NAME` overrides), the system, the environment
    (`APP_ENV`); `OTEL_RESOURCE_ATTRIBUTES` adds more under these."""
    return {
        "service.name": environ.get("OTEL_SERVICE_NAME", "").strip() or f"{NAMESPACE}-{service}",
        "service.namespace": NAMESPACE,
        "deployment.environment.name": environ.get("APP_ENV", "production").strip() or "none",
    }


def setup(service: str, environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """Turn tracing on for this process when an OTLP endpoint is configured; None (and nothing
    built) otherwise. Call once, from the service's composition root, before building the
    broker; what is buffered is exported when the process exits (the SDK's exit hook)."""
    environ = os.environ if environ is None else environ
    target = endpoint(environ)
    if target is None:
        return None
    # Imported only when on: the SDK and the exporter cost start-up time nobody needs when off.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create(resource_attributes(service, environ)))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    parts = urlsplit(target)  # named by host and port only: user info may hold a secret
    log.info(
        "tracing on: spans exported over OTLP http/protobuf to %s:%s", parts.hostname, parts.port
    )
    return provider


def install(provider: TracerProvider) -> None:
    """Trace with `provider` from now on (`setup` does it; tests install an in-memory one).

    It also becomes OpenTelemetry's global provider the first time (the global can be set once
    per process), which `shared.publisher` and any other instrumented library use."""
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer("sns-telegram")
    if not isinstance(trace.get_tracer_provider(), type(provider)):
        trace.set_tracer_provider(provider)


def uninstall() -> None:
    """Back to off (tests)."""
    global _provider, _tracer
    _provider = _tracer = None


def shutdown() -> None:
    """Export what is buffered (bounded by the exporter's timeout) and stop tracing."""
    provider = _provider
    uninstall()
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    """Whether spans are being recorded in this process."""
    return _tracer is not None


def provider() -> TracerProvider | None:
    """The tracer provider in use, or None when off."""
    return _provider


def current() -> Context | None:
    """The current trace context, to carry to work that runs elsewhere; None when off."""
    return otel_context.get_current() if _tracer is not None else None


def span(
    name: str,
    *,
    parent: Context | None = None,
    root: bool = False,
    links: Sequence[Link] = (),
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """A span, current inside the `with`: a child of `parent` (a context from `current`), of
    the current span, or a new trace with `root`. Off, a shared no-op that yields None.

    Exceptions set the span's status and `error.type` only (the exception's `error_type`
    attribute when it has one, else its class name): their messages are not recorded, since
    some quote a URL, and aiogram's URLs hold the bot token."""
    tracer = _tracer
    if tracer is None:
        return _NOTHING
    return _recording(tracer, name, Context() if root else parent, links, kind, attributes)


@contextlib.contextmanager
def _recording(
    tracer: trace.Tracer,
    name: str,
    parent: Context | None,
    links: Sequence[Link],
    kind: SpanKind,
    attributes: Mapping[str, Any] | None,
) -> Iterator[Span]:
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=kind,
        links=links,
        attributes=dict(attributes or {}),
        record_exception=False,
        set_status_on_exception=False,
    ) as current_span:
        try:
            yield current_span
        except BaseException as exc:
            failed(current_span, getattr(exc, "error_type", None) or type(exc).__name__)
            raise


def failed(target: Span | None, error_type: str) -> None:
    """Mark a span as failed with `error.type` (a class name or a short code, never a message)."""
    if target is not None:
        target.set_attribute("error.type", error_type)
        target.set_status(Status(StatusCode.ERROR))


def link_to_current() -> list[Link]:
    """A link to the current span (a batch's), for a span that starts in another trace."""
    if _tracer is None:
        return []
    context = trace.get_current_span().get_span_context()
    return [Link(context)] if context.is_valid else []


def link_to(contexts: Sequence[Context | None]) -> list[Link]:
    """Links to the spans current in each of `contexts` (a batch's events), deduplicated."""
    seen: dict[tuple[int, int], Link] = {}
    for carried in contexts:
        if carried is None:
            continue
        context = trace.get_current_span(carried).get_span_context()
        if context.is_valid:
            seen.setdefault((context.trace_id, context.span_id), Link(context))
    return list(seen.values())


def attached(carried: Context | None) -> contextlib.AbstractContextManager[None]:
    """Make `carried` current for the block: a task created inside starts in that trace."""
    return _NOTHING if carried is None else _attached(carried)


@contextlib.contextmanager
def _attached(carried: Context) -> Iterator[None]:
    token = otel_context.attach(carried)
    try:
        yield
    finally:
        otel_context.detach(token)


def redacted_url(template: str, api_method: str) -> str:
    """An aiogram API URL template (`.../bot{token}/{method}`) as an HTTP span shows it."""
    return template.format(token=TOKEN_MASK, method=api_method)


def bot_api_span(template: str, api_method: str) -> tuple[str, dict[str, Any]]:
    """The name and attributes of an HTTP client span for one Bot API method (OpenTelemetry's
    HTTP conventions), from aiogram's URL template: the URL with the bot token replaced by
    `REDACTED`, never the URL the request goes to."""
    url = redacted_url(template, api_method)
    parts = urlsplit(url)
    attributes = {
        "http.request.method": "POST",
        "url.full": url,
        "url.template": f"/bot{{token}}/{api_method}",
        "server.address": parts.hostname or "",
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
    }
    return f"POST /bot{{token}}/{api_method}", attributes


def safe_trace_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """`headers` with every trace header that is not short text removed.

    A publisher outside our services may send anything as `traceparent` (bytes, numbers, tables,
    megabytes of text); OpenTelemetry's propagators expect text and raise on the rest, which in
    a consumer would leave the message unacknowledged. Text that is not a valid trace context is
    ignored by the propagators themselves (the consumer then starts a new trace)."""
    unsafe = [
        name
        for name in TRACE_HEADERS
        if name in headers
        and not (isinstance(headers[name], str) and len(headers[name]) <= MAX_TRACE_HEADER)
    ]
    if not unsafe:
        return dict(headers)
    return {name: value for name, value in headers.items() if name not in unsafe}


def broker_middlewares() -> tuple[Any, ...]:
    """faststream middlewares for a broker: consume and publish spans from faststream's
    `RabbitTelemetryMiddleware`, behind a guard that drops unusable trace headers; none when
    tracing is off."""
    if _provider is None:
        return ()
    from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware

    return (SafeTraceHeaders, RabbitTelemetryMiddleware(tracer_provider=_provider))


class SafeTraceHeaders(BaseMiddleware):
    """Runs before faststream's telemetry middleware: what that reads must be text."""

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        msg.headers = safe_trace_headers(msg.headers or {})
        return await call_next(msg)


def instrument_app(app: Any) -> None:
    """A server span for every request to a FastAPI app (OpenTelemetry's FastAPI
    instrumentation; health and metrics requests excluded), continuing a caller's `traceparent`;
    nothing when tracing is off."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=_provider, excluded_urls="/healthz,/readyz,/metrics"
    )


def trace_updates(dispatcher: Any) -> None:
    """A span for every bot update an aiogram dispatcher handles (a new trace under long polling,
    the webhook request's child by webhook), so what a button press publishes joins it."""
    if _tracer is None:
        return

    async def update_span(handler: Any, update: Any, data: dict[str, Any]) -> Any:
        with span("telegram update", attributes={"telegram.update_id": update.update_id}):
            return await handler(update, data)

    dispatcher.update.outer_middleware(update_span)
