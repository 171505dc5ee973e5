"""`genrec ab`: the live A/B between production and the registry's canary, and the promotion it decides."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from genrec.cli.pipeline import open_registry

app = typer.Typer(help="The live A/B test between production and the canary (genrec.evaluation.abtest).",
                  no_args_is_help=True)
console = Console()
HOURS = typer.Option(24.0, "--hours", min=0.01, help="The window: lists served in the last HOURS.")
MARGIN = typer.Option(0.0, "--margin", min=0.0, max=1.0,
                      help="How much worse than production (a share of its rate) still counts as not worse.")


def _report(hours: float, margin: float) -> dict[str, Any]:
    from genrec.apps.admin_analytics import make_reader
    from genrec.config import get_settings
    from genrec.evaluation.abtest import report

    reader = make_reader(get_settings())
    try:
        return report(reader.ab(hours), reader.ab(hours, by_hour=True), margin=margin)
    finally:
        reader.close()


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _show(r: dict[str, Any]) -> None:
    table = Table(title=f"live A/B (canary share of lists {_pct(r['canary_share'])})")
    for col in ("arm", "versions", "lists", "users", "click-through [95 % CI]", "conversion [95 % CI]"):
        table.add_column(col)
    for arm in ("production", "canary"):
        c, v = r["ctr"][arm], r["conversion"][arm]
        table.add_row(arm, ", ".join(c["versions"]) or "-", str(c["lists"]), str(c["users"]),
                      f"{_pct(c['rate'])} [{_pct(c['interval'][0])}, {_pct(c['interval'][1])}]",
                      f"{_pct(v['rate'])} [{_pct(v['interval'][0])}, {_pct(v['interval'][1])}]")
    console.print(table)
    for name in ("ctr", "conversion"):
        m = r[name]
        lo, hi = m["difference_interval"]
        console.print(f"{name}: canary - production {_pct(m['difference'])} [{_pct(lo)}, {_pct(hi)}], "
                      f"p = {m['p_value']:.4f}; better: {m['better'] or 'no significant difference'}; "
                      f"canary not worse (margin {m['margin']:g}): {'yes' if m['canary_not_worse'] else 'no'}")


@app.command("report")
def report_cmd(hours: float = HOURS, margin: float = MARGIN,
               as_json: bool = typer.Option(False, "--json", help="The report as JSON.")) -> None:
    """Each arm's click-through and conversion with 95 % intervals, and the test between them."""
    r = _report(hours, margin)
    if as_json:
        print(json.dumps(r, indent=2, default=str))
    else:
        _show(r)


@app.command("promote")
def promote_cmd(hours: float = HOURS, margin: float = MARGIN,
                min_lists: int = typer.Option(1000, "--min-lists", min=1,
                                              help="Lists each arm must have served before a decision."),
                redis: bool = typer.Option(True, "--redis/--no-redis")) -> None:
    """Promote the canary to production when its click-through is not worse than production's at
    95 % confidence (within --margin); otherwise change nothing and exit 1 saying why."""
    from genrec.config import get_settings
    from genrec.pipelines.publish import promote

    r = _report(hours, margin)
    _show(r)
    ctr = r["ctr"]
    short = [arm for arm in ("production", "canary") if ctr[arm]["lists"] < min_lists]
    if short:
        console.print(f"[yellow]no decision:[/yellow] fewer than {min_lists} lists for {', '.join(short)}")
        raise typer.Exit(1)
    if not ctr["canary_not_worse"]:
        console.print("[red]not promoted:[/red] the canary may be worse than production at 95 % confidence")
        raise typer.Exit(1)
    with open_registry() as registry:
        live = [m for m in registry.list(status="canary") if m.traffic_weight > 0]
        if not live:
            console.print("[red]not promoted:[/red] the registry has no canary with traffic")
            raise typer.Exit(1)
        canary = max(live, key=lambda m: m.traffic_weight)  # the one the model servers serve (serve_canary)
        mv = promote(canary.version, registry, get_settings(), use_redis=redis)
    console.print(f"promoted {mv.version} to production -> {mv.artifact_uri}")
