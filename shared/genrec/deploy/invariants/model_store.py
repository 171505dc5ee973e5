"""An InferenceService's storageUri is a place genrec writes a Triton model repository.

Both sides come from code, with the bucket the render's genrec containers are configured with:
`genrec.pipelines.publish` writes one repository per version (`artifact_uri(<version>)/serving`),
and `genrec.serving.repository.production_repository_uri`, where it exists, is the repository
that follows the production pointer. A storageUri matching neither is a model server that
downloads nothing.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from genrec.config import Settings
from genrec.deploy import effective
from genrec.deploy.invariants.context import Context, problem
from genrec.deploy.manifests import Manifest
from genrec.deploy.problems import Problem
from genrec.deploy.workloads import containers, isvc_model_keys, resolved_env

SOURCE = "invariant:model-store"
_VERSION = "VERSION0"


def written_repositories(s: Settings) -> list[tuple[str, re.Pattern[str]]]:
    """(description, pattern) of every URI genrec writes a Triton repository to."""
    from genrec.pipelines import publish

    per_version = f"{publish.artifact_uri(_VERSION, s)}/{publish.SERVING_SUBDIR}"
    found = [(f"{per_version.replace(_VERSION, '<version>')} (genrec.pipelines.publish)",
              re.compile(re.escape(per_version).replace(_VERSION, r"[^/]+")))]
    try:
        from genrec.serving.repository import production_repository_uri
    except ImportError:  # older genrec: publish's per-version repositories only
        return found
    uri = production_repository_uri(s).rstrip("/")
    found.append((f"{uri} (genrec.serving.repository.production_repository_uri)", re.compile(re.escape(uri))))
    return found


def _settings(ctx: Context, m: Manifest) -> Settings:
    """The settings of the InferenceService's own genrec container, else of any genrec container beside it."""
    candidates = containers(m) + [c for o in ctx.objects() if o.namespace == m.namespace for c in containers(o)]
    for c in candidates:
        env = {k: v.value for k, v in resolved_env(c, ctx.by_key).items() if v.value is not None}
        if any(k.startswith(effective.PREFIX) for k in env):
            try:
                return effective.from_env(env)
            except ValidationError:
                continue  # reported by the dev-address invariant
    return effective.from_env({})


def check(ctx: Context) -> list[Problem]:
    found = []
    for m in ctx.of("serving.kserve.io", "InferenceService"):
        predictor = m.spec().get("predictor") or {}
        uris = [(key, predictor[key]["storageUri"]) for key in sorted(isvc_model_keys())
                if isinstance(predictor.get(key), dict) and "storageUri" in predictor[key]]
        if not uris:
            continue
        written = written_repositories(_settings(ctx, m))
        for key, uri in uris:
            if not any(p.fullmatch(str(uri).rstrip("/")) for _d, p in written):
                found.append(problem(m, ["spec", "predictor", key, "storageUri"],
                                     f"{uri} is not where genrec writes a Triton repository "
                                     f"({'; '.join(d for d, _p in written)})", SOURCE))
    return found
