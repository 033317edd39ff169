"""Spans for tests and benchmarks to look at: an in-memory exporter for services run in-process
(`recording`), and a tiny OTLP/HTTP receiver for services run as processes (`OtlpReceiver`:
what `OTEL_EXPORTER_OTLP_ENDPOINT` points at, decoding what the real exporter sends)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common import tracing


@dataclass(frozen=True)
class Span:
    """One finished span, whichever way it came: ids as hex, attributes as plain values."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    attributes: dict[str, Any]
    links: list[tuple[str, str]] = field(default_factory=list)
    """(trace id, span id) of each span it links to."""
    service: str = ""


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def from_sdk(span: ReadableSpan) -> Span:
    context = span.get_span_context()
    assert context is not None
    return Span(
        name=span.name,
        trace_id=_hex(context.trace_id, 32),
        span_id=_hex(context.span_id, 16),
        parent_id=_hex(span.parent.span_id, 16) if span.parent else None,
        kind=span.kind.name,
        attributes=dict(span.attributes or {}),
        links=[(_hex(k.context.trace_id, 32), _hex(k.context.span_id, 16)) for k in span.links],
        service=str(span.resource.attributes.get("service.name", "")),
    )


_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))


class Recorded:
    """What the services in this process traced since `recording` began."""

    def spans(self) -> list[Span]:
        return [from_sdk(span) for span in _exporter.get_finished_spans()]


@contextlib.contextmanager
def recording() -> Iterator[Recorded]:
    """Tracing on in this process, every span kept in memory; off again afterwards. Build the
    services inside (their brokers take the telemetry middleware when built)."""
    _exporter.clear()
    tracing.install(_provider)
    try:
        yield Recorded()
    finally:
        tracing.uninstall()
        _exporter.clear()


def _attribute(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_attribute(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")


def decode(body: bytes) -> list[Span]:
    """The spans of one OTLP/HTTP protobuf export request."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _attribute(a.value) for a in resource_spans.resource.attributes}
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                spans.append(
                    Span(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex() or None,
                        kind=_KINDS[span.kind],
                        attributes={a.key: _attribute(a.value) for a in span.attributes},
                        links=[(k.trace_id.hex(), k.span_id.hex()) for k in span.links],
                        service=str(resource.get("service.name", "")),
                    )
                )
    return spans


class OtlpReceiver:
    """An OTLP/HTTP collector on 127.0.0.1 keeping every span it is sent (and every request's
    raw body, to search for what must never be sent); `endpoint` is the value for
    `OTEL_EXPORTER_OTLP_ENDPOINT`."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                spans = decode(body) if self.path == "/v1/traces" else []
                with receiver._lock:
                    receiver.bodies.append(body)
                    receiver._spans.extend(spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def in_trace(spans: Iterable[Span], trace_id: str) -> dict[str, Span]:
    """The spans of one trace, by name (the last of each name)."""
    return {span.name: span for span in spans if span.trace_id == trace_id}


def text_of(span: Span) -> str:
    """Everything a span says, as one string to search for a secret in."""
    return repr((span.name, span.attributes, span.service))
