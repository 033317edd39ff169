"""The linker's REST API for the frontend: `routes` (the endpoints and the statuses each
documents), `schemas` (their bodies), `trusted_bot` (who may call verify-link), `errors` (the
one handler that answers the use cases' refusals). `services.linker.app` mounts them."""
