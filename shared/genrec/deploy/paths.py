"""Where the deploy tooling finds the repository's parts (the package runs from the checkout)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PROGRAM = REPO / "infra" / "pulumi"  # the Pulumi program (entry genrec_infra.program.main)
DOCKERFILES = REPO / "deploy"  # every genrec image is built by a file here
NODE_VALIDATOR = REPO / "infra" / "validate"  # Knative/Istio/Prometheus-operator models (npm)
SCHEMAS = Path(__file__).resolve().parent / "schemas"  # schemas shipped with the package
