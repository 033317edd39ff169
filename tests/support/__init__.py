"""What tests and benchmarks share, one module per fact:

- `ids`: user, chat and event ids no other test uses (the database is shared by the run);
- `examples`: the specification's examples (its moment, its events' data);
- `waiting`: `eventually`, waiting on a condition with a deadline (never a bare sleep);
- `jwts`: the platform's JWTs, user and admin tokens, with audience and issuer;
- `links`: `seed_links`, writing `telegram_links` rows as the linker would;
- `standin`: the Telegram stand-in, in-process (the `standin` fixture) or as a process;
- `processes`: our commands as child processes (`python -m services.cli NAME`): environment,
  log, `/readyz`, SIGTERM; and `free_port`;
- `prometheus`: deploy/observability/generate.py (`generate`: the dashboard's panels, the alert
  rules) and `running_prometheus`, Debian's Prometheus on a free port scraping given targets;
- `traces`: spans to look at, in memory (services in-process) or from an OTLP receiver (services
  as processes).

Finding and isolating the real servers is `tests/infra.py`'s; the fixtures are in
`tests/conftest.py`; in-memory fakes of each service's ports are in `tests/<service>/fakes.py`.
"""
