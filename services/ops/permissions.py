"""`sns-telegram broker-permissions`: the RabbitMQ permissions that keep internal events internal.

Other teams publish to `sns.events`; only our services may write to `sns.telegram.internal`,
where the notifier tells the linker to pause or move a link. RabbitMQ enforces that with
per-user permissions (three regular expressions per vhost: configure, write, read). This sets
them through the management HTTP API, idempotently:

- our services' account (the one in RABBITMQ_URL): configure, write and read everything in the
  vhost (they declare and consume their queues and both exchanges);
- each platform publisher account: write `sns.events` only, configure `sns.events` only (the
  shared publisher declares the exchange it publishes to), read nothing.

The management API is RABBITMQ_MANAGEMENT_URL (default: RABBITMQ_URL's host, port 15672), used
with RABBITMQ_URL's credentials, which must be an administrator's. A publisher account that does
not exist is created with the password in RABBITMQ_PUBLISHER_PASSWORD.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from services.ops.amqp import OpsError
from shared.contract import EXCHANGE

NOTHING = "^$"
ONLY_EVENTS = "^" + re.escape(EXCHANGE) + "$"


@dataclass(frozen=True)
class Permission:
    """One account's permissions in one vhost."""

    user: str
    configure: str
    write: str
    read: str

    def body(self) -> dict[str, str]:
        return {"configure": self.configure, "write": self.write, "read": self.read}


def services_permission(user: str) -> Permission:
    """Our services: everything in their vhost."""
    return Permission(user, ".*", ".*", ".*")


def publisher_permission(user: str) -> Permission:
    """A platform publisher: `sns.events` and nothing else (never the internal exchange)."""
    return Permission(user, ONLY_EVENTS, ONLY_EVENTS, NOTHING)


class Management:
    """The few management API calls this needs (stdlib HTTP; nothing else to install)."""

    def __init__(self, base_url: str, user: str, password: str, timeout: float = 10) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise OpsError(f"RABBITMQ_MANAGEMENT_URL must be an http(s) URL, not {base_url!r}")
        self._base = base_url.rstrip("/")
        self._auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._timeout = timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 (an operator-given http(s) URL)
            self._base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {self._auth}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:  # noqa: S310
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and method == "GET":
                return None
            raise OpsError(
                f"RabbitMQ's management API answered {exc.code} to {method} {path}"
                + (" (RABBITMQ_URL's account must be an administrator)" if exc.code == 401 else "")
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise OpsError(
                f"cannot reach RabbitMQ's management API at {self._base}: {exc}"
            ) from None
        return json.loads(raw) if raw else None


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def apply(
    management: Management,
    vhost: str,
    services_user: str,
    publishers: dict[str, str | None],
) -> list[Permission]:
    """Set our services' and each publisher's permissions in `vhost` (creating a publisher that
    does not exist when its password is given); what was set."""
    set_: list[Permission] = []
    for user, password in publishers.items():
        if user == services_user:
            raise OpsError(f"{user!r} is our services' account, not a publisher's")
        if management.call("GET", f"/api/users/{_quote(user)}") is None:
            if not password:
                raise OpsError(
                    f"publisher account {user!r} does not exist: give its password in "
                    "RABBITMQ_PUBLISHER_PASSWORD to create it"
                )
            management.call("PUT", f"/api/users/{_quote(user)}", {"password": password, "tags": ""})
    wanted = [services_permission(services_user), *map(publisher_permission, publishers)]
    for permission in wanted:
        path = f"/api/permissions/{_quote(vhost)}/{_quote(permission.user)}"
        management.call("PUT", path, permission.body())
        set_.append(permission)
    return set_
