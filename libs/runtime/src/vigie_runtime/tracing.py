"""OpenTelemetry traces, with the W3C trace context carried in Kafka headers.

One trace follows an event across services: the producer injects ``traceparent`` (and
``tracestate``) of the current span into the record's headers; the consuming loop extracts it
and starts its per-message span as a child. The W3C propagator is used directly rather than the
global one, so a service's propagator configuration cannot change what goes on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableSequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .settings import ObservabilitySettings

#: what Kafka clients give and take as record headers
Headers = list[tuple[str, bytes]]

TRACER_NAME = "vigie_runtime"
_PROPAGATOR = TraceContextTextMapPropagator()


class _HeaderGetter(Getter[Iterable[tuple[str, bytes]]]):
    def get(self, carrier: Iterable[tuple[str, bytes]], key: str) -> list[str] | None:
        found = [value.decode("latin-1") for name, value in carrier if name.lower() == key]
        return found or None

    def keys(self, carrier: Iterable[tuple[str, bytes]]) -> list[str]:
        return [name for name, _ in carrier]


class _HeaderSetter(Setter[MutableSequence[tuple[str, bytes]]]):
    def set(self, carrier: MutableSequence[tuple[str, bytes]], key: str, value: str) -> None:
        # replace rather than append: a re-sent record must not carry two parents
        carrier[:] = [(name, v) for name, v in carrier if name != key]
        carrier.append((key, value.encode("ascii")))


_GETTER = _HeaderGetter()
_SETTER = _HeaderSetter()


def inject(headers: MutableSequence[tuple[str, bytes]], context: Context | None = None) -> None:
    """Write the trace context of ``context`` (default: the current span) into ``headers``."""
    _PROPAGATOR.inject(headers, context=context, setter=_SETTER)


def extract(headers: Iterable[tuple[str, bytes]] | None, traceparent: str | None = None) -> Context:
    """The context a record's headers carry; ``traceparent`` (from the envelope) as a fallback
    for producers that set the envelope field but not the header."""
    carrier = list(headers or ())
    if traceparent and not any(name == "traceparent" for name, _ in carrier):
        carrier.append(("traceparent", traceparent.encode("ascii", "replace")))
    return _PROPAGATOR.extract(carrier, getter=_GETTER)


def current_traceparent(context: Context | None = None) -> str | None:
    """The ``traceparent`` value of the current span, for the envelope's field."""
    carrier: Headers = []
    inject(carrier, context)
    return next((v.decode("ascii") for k, v in carrier if k == "traceparent"), None)


def configure_tracing(
    settings: ObservabilitySettings, *, set_global: bool = True
) -> TracerProvider:
    """A provider naming the service; spans go to OTLP/HTTP when an endpoint is configured.

    The caller shuts the provider down at exit (``service.run_service`` does), flushing spans.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    if settings.otlp_endpoint:
        # imported here: the exporter pulls protobuf and requests, unused without a collector
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME, tracer_provider=provider)
