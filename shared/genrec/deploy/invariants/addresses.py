"""Production workloads must not point at the dev stack: no loopback address, no local state folder.

Two ways a container ends up there: an env value that names 127.0.0.1 / localhost / ::1 (or a
path under the local stack's `.genrec/`), reported where the value is written (the workload, or
the ConfigMap/Secret it reads); or, for a genrec container, a setting its environment leaves
unset, whose default in genrec.config is the embedded local stack (reported on the container,
with the variable to set). Function URLs count too: `Settings.function_url` falls back to
127.0.0.1 for every deployed Knative Service the environment does not name.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from genrec.config import PORT_OFFSETS, StackSettings
from genrec.deploy import effective
from genrec.deploy.invariants.context import Context, problem
from genrec.deploy.problems import Problem, field_path
from genrec.deploy.workloads import Container, EnvVar, containers, resolved_env

SOURCE = "invariant:no-dev-addresses"
_LOOPBACK = re.compile(
    r"(?<![\w.-])(localhost|[\w-]+\.localhost|127(?:\.\d{1,3}){3})(?![\w-])|\[::1\]|(?<![\w:.])::1(?![\w:])", re.I)


def dev_address(text: str) -> str | None:
    """The loopback host or dev-stack path `text` names, if any."""
    m = _LOOPBACK.search(text)
    if m:
        return m.group(0)
    state = StackSettings().state_dir.as_posix().strip("/")
    m = re.search(rf"(?:^|[/\s=:]){re.escape(state)}(?:/|$)", text)
    return m.group(0).strip("/=: ") if m else None


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _effective(ctx: Context, c: Container, env: dict[str, EnvVar]) -> list[Problem]:
    values = {k: v.value for k, v in env.items() if v.value is not None}
    where = [*c.path, "env"]
    try:
        s = effective.from_env(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        return [problem(c.manifest, where, f"container {c.name}: genrec's settings do not load from this "
                                           f"environment: {loc}: {first['msg']}", SOURCE)]
    found = []
    for path, text in effective.leaves(s):
        hit = dev_address(text)
        if path[0] != "stack" and hit and not effective.set_by(path, values):
            found.append(problem(c.manifest, where, f"container {c.name}: setting {'.'.join(path)} is not set (no "
                                                    f"{effective.env_name(path, 2)}), so it defaults to the dev "
                                                    f"stack's {_short(text)}", SOURCE))
    deployed = sorted(m.name for m in ctx.of("serving.knative.dev", "Service"))
    fallbacks = [n for n in deployed if n.replace("-", "_") in PORT_OFFSETS and dev_address(s.function_url(n))]
    if fallbacks:
        found.append(problem(c.manifest, where, f"container {c.name}: {effective.PREFIX}FUNCTIONS__URLS has no URL for "
                                                f"{', '.join(fallbacks)}, so function_url() falls back to the dev "
                                                f"stack (e.g. {s.function_url(fallbacks[0])})", SOURCE))
    return found


def check(ctx: Context) -> list[Problem]:
    if not ctx.production:
        return []
    found: list[Problem] = []
    literal: dict[tuple[str, str, str], tuple[str, set[str]]] = {}  # one report per written value
    for m in ctx.objects():
        for c in containers(m):
            env = resolved_env(c, ctx.by_key)
            for var in env.values():
                hit = dev_address(var.value) if var.value else None
                if hit:
                    key = (var.file, var.obj, field_path(var.field))
                    message = f"{var.name}={_short(var.value or '')} names the dev stack ({hit})"
                    literal.setdefault(key, (message, set()))[1].add(f"{m.label} container {c.name}")
            if any(name.startswith(effective.PREFIX) for name in env):
                found += _effective(ctx, c, env)
    for (file, obj, path), (message, readers) in sorted(literal.items()):
        found.append(Problem(file, obj, path, f"{message}; read by {', '.join(sorted(readers))}", SOURCE))
    return found
