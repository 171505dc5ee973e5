"""Every image a rendered object names is built by a Dockerfile in deploy/, or is a listed third-party image.

Naming rule (the one `StackConfig.sibling_image` in the Pulumi program follows): `deploy/Dockerfile`
builds the image named `genrec`, and with the build argument WORKLOAD=<name> the image
`genrec-<name>` of each workload in genrec.workloads (genrec with that workload's extra only);
`deploy/Dockerfile.<flavour>` builds the image `genrec-<flavour>`; the name is the reference's
last path part without tag or digest (`ghcr.io/genrec/genrec-serving:0.1.0` → `genrec-serving`).
Images inside Helm charts are not in the render (Helm expands charts at `pulumi up`), so only
the images of operator-managed stores need exempting: THIRD_PARTY.
"""

from __future__ import annotations

from pathlib import Path

from genrec.deploy.invariants.context import Context, problem
from genrec.deploy.manifests import walk
from genrec.deploy.paths import DOCKERFILES
from genrec.deploy.problems import Problem
from genrec.workloads import WORKLOADS

SOURCE = "invariant:images"
BASE_IMAGE = "genrec"
# Operands of the operators the program drives (not built here), by image name.
THIRD_PARTY = {
    "postgresql": "CloudNativePG operand (postgresql.cnpg.io Cluster spec.imageName)",
    "clickhouse-server": "Altinity ClickHouseInstallation server (clickhouse/clickhouse-server)",
    "clickhouse-keeper": "Altinity ClickHouseKeeperInstallation keeper (clickhouse/clickhouse-keeper)",
}
IMAGE_KEYS = ("image", "imageName")


def image_name(reference: str) -> str:
    """`REGISTRY/path/name:tag@sha256:…` → `name`."""
    without_digest = reference.split("@", 1)[0]
    last = without_digest.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def built_images(folder: Path = DOCKERFILES) -> dict[str, str]:
    """Image name → the Dockerfile (and build argument) that builds it."""
    built = {}
    for path in sorted(folder.glob("Dockerfile*")):
        if path.name.endswith(".dockerignore"):
            continue
        flavour = path.name.removeprefix("Dockerfile").removeprefix(".")
        built[f"{BASE_IMAGE}-{flavour}" if flavour else BASE_IMAGE] = f"deploy/{path.name}"
        if not flavour:
            built |= {f"{BASE_IMAGE}-{w.name}": f"deploy/{path.name} --build-arg WORKLOAD={w.name}" for w in WORKLOADS}
    return built


def check(ctx: Context, folder: Path = DOCKERFILES) -> list[Problem]:
    built = built_images(folder)
    found = []
    for m in ctx.objects():
        for path, key, value, _parent in walk(m.obj, []):
            if key not in IMAGE_KEYS or not isinstance(value, str):
                continue
            name = image_name(value)
            if name not in built and name not in THIRD_PARTY:
                found.append(problem(m, [*path, key], f"image {value} ({name!r}) is built by no file in deploy/ "
                                                      f"(builds: {', '.join(f'{n} ← {f}' for n, f in built.items())})"
                                                      f" and is not a listed third-party image", SOURCE))
    return found
