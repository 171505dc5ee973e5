"""Every genrec container runs as production, with settings that production accepts.

The Pulumi program deploys production in every stack (`GENREC_ENVIRONMENT=production`), where a
genrec process refuses to start with a development default secret, a weak one or no ingest key
(`genrec.config.production_problems`). Both are found here, before `pulumi up`: a container whose
environment says another environment (or none, which is development), and one whose settings, as
rendered, production would refuse. A Secret's value is a placeholder in a render, so what this
proves of the secrets is that each is set, and not to a development value.
"""

from __future__ import annotations

from pydantic import ValidationError

from genrec.config import env_var, production_problems
from genrec.deploy import effective
from genrec.deploy.invariants.context import Context, problem
from genrec.deploy.problems import Problem
from genrec.deploy.workloads import containers, resolved_env

SOURCE = "invariant:production-environment"
PRODUCTION = "production"


def check(ctx: Context) -> list[Problem]:
    found: list[Problem] = []
    variable = env_var("environment")
    for m in ctx.objects():
        for c in containers(m):
            env = resolved_env(c, ctx.by_key)
            if not any(name.startswith(effective.PREFIX) for name in env):
                continue  # not a genrec container
            values = {k: v.value for k, v in env.items() if v.value is not None}
            where = [*c.path, "env"]
            if (value := values.get(variable)) != PRODUCTION:
                found.append(problem(m, where, f"container {c.name}: {variable} is "
                                               f"{'not set' if value is None else repr(value)}, not {PRODUCTION!r}, "
                                               "so it would run with development defaults allowed", SOURCE))
                continue
            try:
                s = effective.from_env(values)
            except ValidationError:
                continue  # settings that do not load at all: the no-dev-addresses rule names the field
            found += [problem(m, where, f"container {c.name}: production refuses {p}", SOURCE)
                      for p in production_problems(s)]
    return found
