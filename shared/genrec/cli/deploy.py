"""`genrec deploy render | check`: what `pulumi up` would create, as YAML, and whether it is valid."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from genrec.deploy import check as check_mod
from genrec.deploy import k8s_schemas, mockrun, render
from genrec.deploy.manifests import ManifestError
from genrec.deploy.node_models import NodeValidatorMissing
from genrec.deploy.paths import PROGRAM

app = typer.Typer(help="Render the Pulumi program's Kubernetes objects (no cluster) and validate them.",
                  no_args_is_help=True)
console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(2)


@app.command("render")
def render_cmd(stack: str = typer.Option(..., "--stack", help="Pulumi stack (infra/pulumi/Pulumi.STACK.yaml)."),
               out: Path = typer.Option(..., "--out", help="Folder to write to: empty, or an earlier render."),
               ) -> None:
    """Run the Pulumi program under mocks and write every object it would create, one YAML file each."""
    known = sorted(f.name.split(".")[1] for f in PROGRAM.glob("Pulumi.*.yaml"))
    if stack not in known:
        _fail(f"no stack {stack!r} in {PROGRAM} (stacks: {', '.join(known)})")
    try:
        registered = mockrun.run_isolated([stack])[stack]
        rendered = render.render(registered)
        written = render.write(rendered, out)
    except (mockrun.MockRunError, render.RenderError, FileNotFoundError) as exc:
        _fail(str(exc))
    skipped = Counter(item.split()[0] for item in rendered.skipped)
    console.print(f"stack {stack}: {len(written)} files in {out}/")
    if skipped:
        console.print("not written (no cluster object): " + ", ".join(f"{n} × {t}" for t, n in sorted(skipped.items())))
    console.print("secret values are placeholders (<generated at pulumi up: …>, <pulumi config secret …>)")


@app.command("check")
def check_cmd(folder: Path = typer.Argument(..., help="A folder written by `genrec deploy render`."),
              production: bool | None = typer.Option(
                  None, "--production/--no-production",
                  help="Apply the production-only rules (default: any stack but dev; unknown counts as production)."),
              kube_version: str = typer.Option(k8s_schemas.KUBE_VERSION, help="Kubernetes minor to validate against."),
              ) -> None:
    """Validate every rendered object (schemas + genrec's invariants); exit 1 on any problem."""
    try:
        report = check_mod.check(folder, production=production, kube_version=kube_version)
    except (ManifestError, NodeValidatorMissing, RuntimeError, ValueError) as exc:
        _fail(str(exc))
    for p in report.problems:
        console.print(escape(str(p)), soft_wrap=True)
    console.print(f"\n{report.objects} objects, stack {report.stack or '?'} "
                  f"({'production rules' if report.production else 'dev: production-only rules off'})")
    for validator, files in sorted(report.coverage.items()):
        console.print(f"  {len(files):3d}  {escape(validator)}")
    if report.problems:
        console.print(f"[bold red]{len(report.problems)} problem(s)[/]")
        raise typer.Exit(1)
    console.print("[green]no problems[/]")
