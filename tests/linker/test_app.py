"""The served app: health, readiness, metrics and an OpenAPI document with every response."""

import pytest

pytestmark = pytest.mark.integration

OPERATIONS = {
    ("get", "/api/telegram/link-account"): {"200", "401", "429", "503"},
    ("post", "/api/telegram/verify-link"): {
        *("200", "400", "401", "403", "404", "410", "413", "415", "502", "503"),
    },
    ("get", "/api/telegram/status"): {"200", "401", "503"},
    ("post", "/api/telegram/send-test-message"): {"200", "401", "409", "429", "502", "503"},
    ("post", "/api/telegram/unlink-account"): {"200", "401", "503"},
    ("get", "/api/telegram/preferences"): {"200", "401", "404", "503"},
    ("put", "/api/telegram/preferences"): {
        *("200", "400", "401", "404", "413", "415", "422", "503"),
    },
    ("get", "/api/telegram/notifications"): {"200", "400", "401", "422", "503"},
    ("get", "/api/admin/telegram/events/{event_id}/trace"): {
        *("200", "401", "403", "404", "422", "503"),
    },
    ("get", "/api/admin/telegram/users/{user_id}/events"): {"200", "401", "403", "422", "503"},
}


async def test_health_readiness_and_metrics(linker):
    assert (await linker.client.get("/healthz")).json() == {"status": "ok"}
    ready = await linker.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "rabbitmq": "ok",
        "publisher": "ok",
        "telegram_updates": "ok",
    }
    await linker.client.get("/api/telegram/status")
    metrics = (await linker.client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/api/telegram/status"' in metrics
    assert "linker_link_attempts_total" in metrics


async def test_openapi_documents_every_response_and_the_bearer_scheme(linker):
    schema = (await linker.client.get("/openapi.json")).json()
    found = {
        (method, path): set(operation["responses"])
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }
    assert found == OPERATIONS
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert schema["components"]["securitySchemes"]["BotApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Bot-Api-Key",
        "description": "LINKER_BOT_API_KEY: only a trusted bot that runs elsewhere has it",
    }
    # verify-link: the bot's key alone, or the key and a JWT; never a JWT alone.
    verify = schema["paths"]["/api/telegram/verify-link"]["post"]
    assert verify["security"] == [{"BotApiKey": []}, {"BotApiKey": [], "HTTPBearer": []}]
    assert schema["paths"]["/api/telegram/status"]["get"]["security"] == [{"HTTPBearer": []}]
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorBody"
                    }, (method, path, status)
                if status == "429":
                    assert response["headers"]["Retry-After"]["required"] is True
    error = schema["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"status", "code", "message", "details"}
    assert (await linker.client.get("/docs")).status_code == 200


async def test_unknown_paths_and_methods_are_json_errors(linker):
    missing = await linker.client.get("/api/telegram/nothing")
    assert missing.status_code == 404
    assert missing.json()["status"] == "error"
    wrong = await linker.client.delete("/api/telegram/status")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"
