"""Each rendered object against the best schema there is for its kind, and which schema that was.

    core Kubernetes kinds          kubernetes-validate (strict: unknown fields are errors)
    KServe InferenceService        schemas/kserve-v1beta1.json (generated from the kserve wheel)
    Knative, Istio, Prometheus-op  infra/validate (npm @kubernetes-models; unknown fields pass)
    KafkaSource                    its Knative duck-type parts (sink, delivery) + explicit fields
    Strimzi, CloudNativePG,        ObjectMeta + explicit checks of the fields genrec sets
    Altinity, KafkaSink, Helm      (operators.RULES); no schema is published where we can get it
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from genrec.deploy import k8s_schemas, kserve_schema, node_models, operators
from genrec.deploy.manifests import Manifest
from genrec.deploy.problems import Problem, field_path

KSERVE = ("serving.kserve.io/v1beta1", "InferenceService")


@dataclass
class SchemaReport:
    problems: list[Problem] = field(default_factory=list)
    coverage: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # validator → files

    def add(self, m: Manifest, errors: list[tuple[list, str]], source: str) -> None:
        self.problems += [Problem(m.file, m.label, field_path(path), message, source) for path, message in errors]


def _structural(m: Manifest, version: str, report: SchemaReport, label: str) -> None:
    """ObjectMeta plus the explicit rules for the kind; records whether any rule applied."""
    if not m.is_helm:
        report.add(m, operators.check_metadata(m.obj, version), "metadata")
    report.add(m, operators.check(m.obj, m.group, m.kind), "fields")
    covered = label if operators.has_rules(m.group, m.kind) else "metadata only (no schema, no field rules)"
    report.coverage[covered].append(m.file)


def validate(manifests: list[Manifest], version: str = k8s_schemas.KUBE_VERSION) -> SchemaReport:
    report = SchemaReport()
    for_node: list[Manifest] = []
    kserve_label = f"kserve {kserve_schema.load()['x-kserve-version']} (schema from the kserve wheel's models)"
    for m in manifests:
        if m.is_helm:
            _structural(m, version, report, "Helm release: chart, repo, version, values (chart not expanded)")
        elif k8s_schemas.has_schema(m.obj, version):
            report.add(m, k8s_schemas.validate(m.obj, version), f"kubernetes {version}")
            report.coverage[f"kubernetes {version} (kubernetes-validate, strict)"].append(m.file)
        elif (m.api_version, m.kind) == KSERVE:
            report.add(m, k8s_schemas.errors_against(kserve_schema.load(), m.obj, version), "kserve")
            report.coverage[kserve_label].append(m.file)
        else:
            for_node.append(m)
    for m, result in zip(for_node, node_models.validate([m.obj for m in for_node]), strict=True):
        report.add(m, result.errors, "npm @kubernetes-models")
        if result.status in ("valid", "invalid"):
            report.coverage["npm @kubernetes-models (Knative, Istio, Prometheus operator)"].append(m.file)
        elif result.status == "partial":
            _structural(m, version, report, f"partial: {', '.join(result.checked)} by npm duck types + field rules")
        else:
            _structural(m, version, report, "ObjectMeta + field rules (no published schema reachable)")
    return report
