"""docs/asyncapi.json is the contract as the code says it: regenerate with `make docs`.

The AsyncAPI 3.0.0 JSON Schema used here is vendored next to this file (from the npm package
@asyncapi/specs, Apache-2.0) and checked with jsonschema-rs, which the locked dev dependencies
install (through schemathesis); the structural checks run in any case.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services import asyncapi
from services.asyncapi import LINKER_CONSUMED, document, render
from services.common.internal_events import SIGNATURE_HEADER
from services.linker.events import CONSUMED_TYPES
from shared.contract import (
    CONTRACT_VERSION,
    DATA_MODELS,
    DLQ_ERROR_HEADER,
    DLQ_REASON_HEADER,
    EXCHANGE,
    INTERNAL_EXCHANGE,
    INTERNAL_TYPES,
    NOTIFICATION_TYPES,
    NOTIFIER_DLQ,
    NOTIFIER_QUEUE,
    EventType,
    new_event,
    parse_event,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.json"
ASYNCAPI_SCHEMA = Path(__file__).with_name("asyncapi-3.0.0.schema.json")
ENVELOPE_FIELDS = {"event_id", "type", "user_id", "occurred_at", "data"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_committed_document_is_current():
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        "docs/asyncapi.json does not match the code: run `make docs` and commit the result"
    )


def test_the_module_prints_the_document():
    printed = subprocess.run(
        [sys.executable, "-m", "services.asyncapi"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    assert printed.decode("utf-8") == render()


def test_the_document_is_valid_asyncapi_3(doc):
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    schema = json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema_rs.validator_for(schema)
    errors = [f"{list(e.instance_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert errors == []
    broken = {**doc, "operations": {"x": {"action": "publish", "channel": {}}}}
    assert not validator.is_valid(broken)  # the validator does reject a 2.x-style operation


def test_every_reference_resolves(doc):
    def refs(node: Any):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = list(refs(doc))
    assert len(found) > 50
    for ref in found:
        resolve(doc, ref)


def test_the_document_states_the_contract_version_and_content_type(doc):
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["version"] == CONTRACT_VERSION
    assert doc["defaultContentType"] == "application/json"
    assert EXCHANGE in doc["info"]["description"]


@pytest.mark.parametrize("event_type", list(EventType))
def test_every_type_has_a_channel_whose_payload_requires_the_contract_fields(doc, event_type):
    channel = doc["channels"][event_type.value]
    assert channel["address"] == event_type.value
    internal = event_type in INTERNAL_TYPES  # never on the exchange every team writes to
    assert channel["bindings"]["amqp"]["exchange"]["name"] == (
        INTERNAL_EXCHANGE if internal else EXCHANGE
    )
    assert channel["bindings"]["amqp"]["exchange"]["type"] == "topic"
    [message_ref] = channel["messages"].values()
    message = resolve(doc, message_ref["$ref"])
    assert message["contentType"] == "application/json"
    payload = resolve(doc, message["payload"]["$ref"])
    assert set(payload["required"]) >= ENVELOPE_FIELDS
    assert payload["additionalProperties"] is False
    assert payload["properties"]["type"]["const"] == event_type.value
    data = resolve(doc, payload["properties"]["data"]["$ref"])
    model = DATA_MODELS[event_type]
    assert data["title"] == model.__name__
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    assert set(data.get("required", [])) == required
    publish = doc["operations"][f"publish.{event_type.value}"]
    assert publish["action"] == "send"
    assert publish["bindings"]["amqp"]["deliveryMode"] == 2


def test_the_notifier_queue_and_its_dead_letter_queue(doc):
    queue = doc["channels"][NOTIFIER_QUEUE]
    assert queue["bindings"]["amqp"]["is"] == "queue"
    assert set(queue["messages"]) == {t.value for t in NOTIFICATION_TYPES}
    consume = doc["operations"]["notifier.consume"]
    assert consume["action"] == "receive"
    assert len(consume["messages"]) == len(NOTIFICATION_TYPES)
    dlq = doc["channels"][NOTIFIER_DLQ]
    dead_letter = resolve(doc, dlq["messages"]["dead_letter"]["$ref"])
    headers = resolve(doc, dead_letter["headers"]["$ref"])
    assert {DLQ_REASON_HEADER, DLQ_ERROR_HEADER, "x-death"} <= set(headers["properties"])
    assert set(headers["properties"][DLQ_REASON_HEADER]["enum"]) == {
        "invalid",
        "undeliverable",
        "retries_exhausted",
        "processing_error",
    }


def test_the_linker_types_are_the_linker_s(doc):
    assert LINKER_CONSUMED == CONSUMED_TYPES
    assert SIGNATURE_HEADER == asyncapi.SIGNATURE_HEADER
    assert set(doc["channels"]["linker.events"]["messages"]) == {t.value for t in CONSUMED_TYPES}


def _payload_validator(doc: dict[str, Any], schema_name: str):
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    wrapper = {
        "$ref": f"#/components/schemas/{schema_name}",
        "components": {"schemas": doc["components"]["schemas"]},
    }
    return jsonschema_rs.Draft202012Validator(wrapper, validate_formats=True)


@pytest.mark.parametrize("event_type", list(EventType))
def test_examples_and_real_events_match_the_payload_schemas(doc, event_type):
    message = doc["components"]["messages"][event_type.value]
    validator = _payload_validator(doc, message["payload"]["$ref"].rsplit("/", 1)[1])
    for example in message["examples"]:
        parse_event(json.dumps(example["payload"]))
        validator.validate(example["payload"])
    real = json.loads(
        new_event(event_type, 42, message["examples"][0]["payload"]["data"]).to_json()
    )
    validator.validate(real)
    assert not validator.is_valid({**real, "type": "something_else"})
    assert not validator.is_valid({key: v for key, v in real.items() if key != "user_id"})
