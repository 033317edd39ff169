"""The wire contract as an AsyncAPI 3.0 document, generated from `shared.contract`.

    python -m services.asyncapi > docs/asyncapi.json        (what `make docs` runs)

AsyncAPI 3.0.0 rather than 2.6: 3.0 separates *channels* (addresses: our routing keys and queues)
from *operations* (who sends, who receives), so each routing key is described once and both the
platform's publishers and the notifier's consumer point at it. 2.6's `publish`/`subscribe` are
written from the opposite side of what they say, a known source of confusion that 3.0 removed.
3.0 is the current major version and what current tools (Studio, the CLI, faststream) default to.

The payload schemas come from the pydantic models (`model_json_schema`): one envelope per event
type (`Event` with `type` fixed and `data` the type's model), shared definitions under
`components.schemas`. The output is deterministic (no clock, no random ids) so CI can compare it
with the committed `docs/asyncapi.json`.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, create_model
from pydantic.json_schema import models_json_schema

from shared.contract import (
    CONTRACT_VERSION,
    DATA_MODELS,
    DEAD_LETTERED_AT_HEADER,
    DEATH_HEADER,
    DLQ_ERROR_HEADER,
    DLQ_REASON_HEADER,
    DLX_EXCHANGE,
    EXCHANGE,
    INTERNAL_EXCHANGE,
    INTERNAL_TYPES,
    LINKER_DLQ,
    LINKER_QUEUE,
    NOTIFICATION_TYPES,
    NOTIFIER_DLQ,
    NOTIFIER_QUEUE,
    ORIGINAL_ROUTING_KEY_HEADER,
    SIGNATURE_HEADER,
    TYPES,
    DeadLetterReason,
    Event,
    EventType,
    exchange_of,
    new_event,
    sample_data,
)

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"
CONTENT_TYPE = "application/json"
SCHEMA_REF = "#/components/schemas/{model}"
EXAMPLE_DAY = date(2026, 2, 26)
EXAMPLE_TIME = datetime(2026, 2, 26, 10, 30, tzinfo=UTC)

LINKER_CONSUMED = INTERNAL_TYPES
"""`services.linker.events.CONSUMED_TYPES`."""

DESCRIPTION = f"""\
Events of the SNS automation platform that the Telegram services turn into messages, and the
Telegram services' own `telegram.*` events. Contract version {CONTRACT_VERSION}: change it only
with a version bump.

- Exchange `{EXCHANGE}`: topic, durable. The routing key is the event type.
- Body: JSON (`content_type: {CONTENT_TYPE}`), persistent delivery (delivery mode 2),
  AMQP `message_id` = `event_id`. `event_id` is the idempotency key: consumers deduplicate on it,
  so a message may be delivered (or replayed from a dead-letter queue) more than once.
- `data` carries the fields of the type's model; extra fields are allowed and kept.
- Publishers use publisher confirms and `mandatory`, so an event no queue receives is an error.
- The notifier's queue `{NOTIFIER_QUEUE}` dead-letters to exchange `{DLX_EXCHANGE}` (same routing
  key) and queue `{NOTIFIER_DLQ}`, with the reason in the `{DLQ_REASON_HEADER}` header.
- Internal events ({", ".join(f"`{t.value}`" for t in INTERNAL_TYPES)}) travel on exchange
  `{INTERNAL_EXCHANGE}` (topic, durable), which only the Telegram services may write to, never on
  `{EXCHANGE}`; each carries `{SIGNATURE_HEADER}: v1=<hex HMAC-SHA256 of the body>`, keyed from
  the bot token, and the linker dead-letters any without a valid one.
"""


def _title(event_type: EventType) -> str:
    return "".join(part.capitalize() for part in event_type.value.replace(".", "_").split("_"))


def event_model(event_type: EventType) -> type[BaseModel]:
    """The envelope of one event type: `Event` with `type` fixed and `data` typed."""
    fixed_type = cast(Any, Literal)[event_type.value]
    return create_model(
        f"{_title(event_type)}Event",
        __base__=Event,
        __doc__=f"A `{event_type.value}` event: the envelope with `data` as "
        f"`{DATA_MODELS[event_type].__name__}`.",
        type=(fixed_type, ...),
        data=(DATA_MODELS[event_type], ...),
    )


def schemas() -> tuple[dict[EventType, dict[str, Any]], dict[str, Any]]:
    """The payload schema ($ref) of each type, and every definition for `components.schemas`."""
    models = {event_type: event_model(event_type) for event_type in EventType}
    refs, definitions = models_json_schema(
        [(Event, "validation"), *((model, "validation") for model in models.values())],
        ref_template=SCHEMA_REF,
    )
    by_type = {event_type: refs[(model, "validation")] for event_type, model in models.items()}
    components = dict(definitions["$defs"])
    components["DeadLetterHeaders"] = dead_letter_headers_schema()
    components["InternalEventHeaders"] = {
        "title": "InternalEventHeaders",
        "description": "What proves an internal event comes from the Telegram services.",
        "type": "object",
        "properties": {
            SIGNATURE_HEADER: {
                "type": "string",
                "pattern": "^v1=[0-9a-f]{64}$",
                "description": "HMAC-SHA256 of the body, keyed from the bot token.",
            }
        },
        "required": [SIGNATURE_HEADER],
    }
    return by_type, components


def dead_letter_headers_schema() -> dict[str, Any]:
    """The headers a dead letter carries: the notifier's `x-dlq-*` ones or RabbitMQ's `x-death`."""
    return {
        "title": "DeadLetterHeaders",
        "description": (
            "Set by the notifier's `dead_letter()` (which re-publishes the body as received) or, "
            "for a quorum queue's delivery limit and the linker's rejects, by RabbitMQ (`x-death`)."
            " All other headers of the original message are kept."
        ),
        "type": "object",
        "properties": {
            DLQ_REASON_HEADER: {
                "type": "string",
                "enum": list(get_args(DeadLetterReason)),
                "description": "Why the message was dead-lettered.",
            },
            DLQ_ERROR_HEADER: {
                "type": "string",
                "maxLength": 2000,
                "description": "The human-readable error.",
            },
            ORIGINAL_ROUTING_KEY_HEADER: {
                "type": "string",
                "description": "The routing key it was published with on sns.events.",
            },
            DEAD_LETTERED_AT_HEADER: {"type": "string", "format": "date-time"},
            DEATH_HEADER: {
                "type": "array",
                "description": "RabbitMQ's record of dead-letterings, the latest first.",
                "items": {
                    "type": "object",
                    "properties": {
                        "queue": {"type": "string"},
                        "reason": {
                            "type": "string",
                            "enum": ["rejected", "expired", "maxlen", "delivery_limit"],
                        },
                        "count": {"type": "integer", "minimum": 1},
                        "exchange": {"type": "string"},
                        "routing-keys": {"type": "array", "items": {"type": "string"}},
                        "time": {"type": "string", "format": "date-time"},
                    },
                },
            },
        },
        "anyOf": [{"required": [DLQ_REASON_HEADER]}, {"required": [DEATH_HEADER]}],
    }


def _example(event_type: EventType) -> dict[str, Any]:
    event = new_event(
        event_type,
        "123",
        sample_data(event_type, EXAMPLE_DAY),
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"sns-telegram:example:{event_type.value}"),
        occurred_at=EXAMPLE_TIME,
    )
    return {"name": "specification example", "payload": event.model_dump(mode="json")}


def _exchange_binding(name: str) -> dict[str, Any]:
    return {
        "is": "routingKey",
        "exchange": {"name": name, "type": "topic", "durable": True, "autoDelete": False},
        "bindingVersion": AMQP_BINDING_VERSION,
    }


def _queue_binding(name: str) -> dict[str, Any]:
    return {
        "is": "queue",
        "queue": {"name": name, "durable": True, "exclusive": False, "autoDelete": False},
        "bindingVersion": AMQP_BINDING_VERSION,
    }


def _message_refs(types: tuple[EventType, ...]) -> dict[str, Any]:
    return {t.value: {"$ref": f"#/components/messages/{t.value}"} for t in types}


def _operation_messages(channel: str, names: list[str]) -> list[dict[str, str]]:
    return [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in names]


def _consuming(queue: str, title: str, summary: str, types: Iterable[EventType]) -> dict[str, Any]:
    """A service receiving `types` from `queue`, acknowledging each message once handled."""
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{queue}"},
        "title": title,
        "summary": summary,
        "messages": _operation_messages(queue, [t.value for t in types]),
        "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
    }


def document() -> dict[str, Any]:
    """The AsyncAPI document of the wire contract."""
    payloads, components = schemas()
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for event_type in EventType:
        key = event_type.value
        messages[key] = {
            "name": key,
            "title": f"{key} event",
            "summary": DATA_MODELS[event_type].__doc__,
            "contentType": CONTENT_TYPE,
            "correlationId": {
                "description": "The idempotency key; also the AMQP message_id.",
                "location": "$message.payload#/event_id",
            },
            "payload": payloads[event_type],
            "bindings": {"amqp": {"messageType": key, "bindingVersion": AMQP_BINDING_VERSION}},
            "examples": [_example(event_type)],
        }
        exchange = exchange_of(key)
        if event_type in INTERNAL_TYPES:
            messages[key]["headers"] = {"$ref": "#/components/schemas/InternalEventHeaders"}
        channels[key] = {
            "address": key,
            "title": f"{exchange} / {key}",
            "description": f"Routing key `{key}` on the `{exchange}` topic exchange.",
            "messages": _message_refs((event_type,)),
            "bindings": {"amqp": _exchange_binding(exchange)},
        }
        operations[f"publish.{key}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "title": f"Publish {key}",
            "summary": f"Published by {TYPES[event_type].published_by}.",
            "messages": _operation_messages(key, [key]),
            "bindings": {
                "amqp": {
                    "deliveryMode": 2,
                    "mandatory": True,
                    "timestamp": True,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
    messages["dead_letter"] = {
        "name": "dead_letter",
        "title": "Dead letter",
        "summary": "A message that could not be processed, with the reason in its headers.",
        "contentType": CONTENT_TYPE,
        "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
        "payload": {
            "description": (
                "The body exactly as received: normally the event of its routing key's type, "
                "anything at all when the reason is `invalid`."
            )
        },
        "examples": [
            {
                "name": "blocked chat",
                "headers": {
                    DLQ_REASON_HEADER: "undeliverable",
                    DLQ_ERROR_HEADER: "Forbidden: bot was blocked by the user",
                    ORIGINAL_ROUTING_KEY_HEADER: "post_success",
                    DEAD_LETTERED_AT_HEADER: "2026-02-26T10:30:01+00:00",
                },
                "payload": _example(EventType.POST_SUCCESS)["payload"],
            }
        ],
    }
    channels[NOTIFIER_QUEUE] = {
        "address": NOTIFIER_QUEUE,
        "title": f"queue {NOTIFIER_QUEUE}",
        "description": (
            f"The notifier's queue: quorum, durable, single active consumer, bound to `{EXCHANGE}`"
            f" for every notification type; `x-delivery-limit` = NOTIFIER_DELIVERY_LIMIT; dead "
            f"letters go to exchange `{DLX_EXCHANGE}` with their routing key."
        ),
        "messages": _message_refs(NOTIFICATION_TYPES),
        "bindings": {"amqp": _queue_binding(NOTIFIER_QUEUE)},
    }
    channels[LINKER_QUEUE] = {
        "address": LINKER_QUEUE,
        "title": f"queue {LINKER_QUEUE}",
        "description": (
            f"The linker's queue: quorum, durable, bound to `{INTERNAL_EXCHANGE}` for the "
            f"notifier's signed events about chats; unsigned, invalid, rejected or over-delivered "
            f"messages go to `{LINKER_DLQ}`."
        ),
        "messages": _message_refs(LINKER_CONSUMED),
        "bindings": {"amqp": _queue_binding(LINKER_QUEUE)},
    }
    for dlq, origin in ((NOTIFIER_DLQ, NOTIFIER_QUEUE), (LINKER_DLQ, LINKER_QUEUE)):
        channels[dlq] = {
            "address": dlq,
            "title": f"queue {dlq}",
            "description": (
                f"Dead letters of `{origin}` (quorum, durable, bound to `{DLX_EXCHANGE}`). "
                "Inspect and replay them with `sns-telegram dlq list|show|replay|purge --queue "
                f"{dlq}`; a replay re-publishes to the exchange of its original routing key "
                f"(`{EXCHANGE}`, or `{INTERNAL_EXCHANGE}` for internal events, signature kept)."
            ),
            "messages": {"dead_letter": {"$ref": "#/components/messages/dead_letter"}},
            "bindings": {"amqp": _queue_binding(dlq)},
        }
    operations["notifier.consume"] = _consuming(
        NOTIFIER_QUEUE,
        "Notifier: send Telegram messages",
        "Renders each notification and sends it to the user's linked Telegram chat.",
        NOTIFICATION_TYPES,
    )
    operations["notifier.dead_letter"] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{NOTIFIER_DLQ}"},
        "title": "Notifier: dead-letter a message",
        "summary": (
            f"Re-publishes the body as received to `{DLX_EXCHANGE}` with the original routing key "
            "and the reason headers, confirmed, then acknowledges the original."
        ),
        "messages": _operation_messages(NOTIFIER_DLQ, ["dead_letter"]),
    }
    operations["linker.consume"] = _consuming(
        LINKER_QUEUE,
        "Linker: apply the notifier's chat events",
        "Pauses links Telegram refused; moves links of migrated groups.",
        LINKER_CONSUMED,
    )
    for dlq in (NOTIFIER_DLQ, LINKER_DLQ):
        operations[f"operator.inspect.{dlq}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{dlq}"},
            "title": f"Operator: inspect and replay {dlq}",
            "summary": "`sns-telegram dlq`: list, show, replay (publish-confirm, then ack), purge.",
            "messages": _operation_messages(dlq, ["dead_letter"]),
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:sns-telegram:events",
        "info": {
            "title": "SNS Telegram notifications: event contract",
            "version": CONTRACT_VERSION,
            "description": DESCRIPTION,
            "tags": [{"name": "sns"}, {"name": "telegram"}],
        },
        "servers": {
            "rabbitmq": {
                "host": "localhost:5672",
                "pathname": "/",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "Every service reads the broker's address from RABBITMQ_URL.",
            }
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"schemas": components, "messages": messages},
    }


def render() -> str:
    """The document as committed in docs/asyncapi.json (stable key order, final newline)."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Print the document on stdout (UTF-8 whatever the locale)."""
    sys.stdout.buffer.write(render().encode("utf-8"))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
