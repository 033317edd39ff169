"""Say exactly what to start when PostgreSQL or RabbitMQ does not answer (used by `make run`)."""

import os
import socket
import sys
import urllib.parse

HOW = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "RabbitMQ": "rabbitmq-server -detached",
}


def answers(url: str, port: int) -> bool:
    parsed = urllib.parse.urlsplit(url.replace("+psycopg", ""))
    try:
        with socket.create_connection((parsed.hostname or "localhost", parsed.port or port), 2):
            return True
    except OSError:
        return False


def main() -> int:
    checks = {
        "PostgreSQL": answers(os.environ["DATABASE_URL"], 5432),
        "RabbitMQ": answers(os.environ["RABBITMQ_URL"], 5672),
    }
    missing = [name for name, ok in checks.items() if not ok]
    if not missing:
        return 0
    print(f"{' and '.join(missing)} not reachable (DATABASE_URL / RABBITMQ_URL). Start them:")
    print("  with Docker:  docker compose -f deploy/docker-compose.yml up -d rabbitmq postgres")
    for name in missing:
        print(f"  or locally:   {HOW[name]}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
