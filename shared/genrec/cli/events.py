"""`genrec events`: the event contract (schemas), sending test events, the bridge, replaying dead letters."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import typer
from rich.console import Console

from genrec.config import get_settings
from genrec.events.contracts import EVENT_TYPES, INTERACTION
from genrec.events.schemas import SCHEMA_DIR, write_all
from genrec.workloads import PRIORITIES

app = typer.Typer(help="CloudEvents contract: schemas, test events, the local eventing bridge, dead-letter replay.",
                  no_args_is_help=True)
console = Console()


@app.command()
def schemas(out: Path = typer.Option(SCHEMA_DIR, help="Folder to write the JSON Schemas to.")) -> None:
    """Write one JSON Schema per CloudEvent type (generated from the contract models)."""
    for path in write_all(out):
        console.print(f"wrote {path}")


@app.command("types")
def list_types() -> None:
    """List the CloudEvent types, their topics and partition keys."""
    s = get_settings()
    for t, spec in EVENT_TYPES.items():
        console.print(f"{t:<40} → {s.kafka.topic(spec.topic_key):<22} key data.{spec.partition_field}")


@app.command()
def send(
    user_id: str,
    item_id: str,
    event_type: str = typer.Option("click", help="view, click, like, add_to_cart, purchase, rating, skip"),
    source: str = typer.Option("cli", help="CloudEvent source."),
) -> None:
    """Send one interaction event through event-capture (binary mode)."""
    s = get_settings()
    body = {"user_id": user_id, "item_id": item_id, "event_type": event_type}
    headers = {"ce-specversion": "1.0", "ce-type": INTERACTION, "ce-source": source,
               "ce-id": f"cli-{uuid.uuid4().hex}",
               "content-type": "application/json"}
    resp = httpx.post(s.function_url("event_capture") + "/api/v1/events", headers=headers, content=json.dumps(body))
    console.print(f"{resp.status_code} {resp.text}")
    if resp.status_code >= 400:
        raise typer.Exit(1)


@app.command()
def replay(
    topic: str = typer.Argument(..., help="A dead-letter topic, e.g. user_events.dlq."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be re-sent; send and commit nothing."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Re-send at most this many records."),
) -> None:
    """Re-send dead-lettered records to their source topic, once each (safe to run again)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from genrec.events.replay import DeadLetterReplay, NotADeadLetterTopic, ReplayError

    s = get_settings()
    try:
        job = DeadLetterReplay(s, topic)
    except NotADeadLetterTopic as exc:
        raise typer.BadParameter(str(exc), param_hint="TOPIC") from None
    try:
        if dry_run:
            letters = job.peek(limit)
            table = Table("offset", "event id", "type", "reason", title=f"{topic} → {job.source}")
            for letter in letters:
                table.add_row(f"{letter.partition}/{letter.offset}", letter.event_id, letter.event_type,
                              letter.reason[:80])
            console.print(table)
            console.print(f"would re-send {len(letters)} record(s) to {job.source} (dry run: nothing sent)")
            return
        total = job.pending()
        total = min(total, limit) if limit else total
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"{topic} → {job.source}", total=total or None)
            sent = job.run(limit, on_sent=lambda n: progress.advance(task, n))
    except ReplayError as exc:
        console.print(f"[red]replay failed:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"re-sent {sent} record(s) from {topic} to {job.source}")


@app.command()
def bridge(priority: str = typer.Option("realtime", help="Deliver the subscriptions of this priority: "
                                         f"{' or '.join(PRIORITIES)} (the dev stack runs one bridge per priority).")
           ) -> None:
    """Run the local eventing bridge (Kafka → functions) in the foreground."""
    if priority not in PRIORITIES:
        raise typer.BadParameter(f"one of {', '.join(PRIORITIES)}", param_hint="--priority")
    import signal
    import threading

    from prometheus_client import CollectorRegistry, start_http_server

    from genrec.config import bridge_name, bridge_port_key
    from genrec.devstack.services import SERVICES
    from genrec.events.bridge import Bridge, ConsumerLagCollector
    from genrec.events.subscriptions import SUBSCRIPTIONS
    from genrec.logs import configure_logging

    s = get_settings()
    configure_logging(bridge_name(priority), s)
    # Deliver only to functions this stack runs; records for the others wait in Kafka.
    running = Bridge(s, url_for=lambda name: s.function_url(name.replace("-", "_")) if name in SERVICES else None,
                     subscriptions=tuple(sub for sub in SUBSCRIPTIONS if sub.priority == priority))
    registry = CollectorRegistry()
    registry.register(running.stats.collector())
    registry.register(ConsumerLagCollector(running))
    start_http_server(s.stack.port(bridge_port_key(priority)), addr=s.stack.host, registry=registry)
    running.start()
    console.print(f"bridge ({priority}): {len(running.workers)} subscription workers running")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    running.stop()
    console.print(f"bridge stopped: {running.stats}")


@app.command()
def retention(every: float = typer.Option(2.0, min=1.0, help="Seconds between trims.")) -> None:
    """Run the embedded broker's log retention in the foreground: drop the record batches every
    subscription has committed (a Kafka cluster has its own retention; this is for tansu)."""
    import signal
    import threading

    from prometheus_client import CollectorRegistry, start_http_server

    from genrec.devstack.retention import LogRetention
    from genrec.events.subscriptions import consumer_groups
    from genrec.logs import configure_logging

    s = get_settings()
    configure_logging("kafka-retention", s)
    running = LogRetention(s, consumer_groups(s))
    registry = CollectorRegistry()
    registry.register(running.collector())
    start_http_server(s.stack.port("kafka_retention"), addr=s.stack.host, registry=registry)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    console.print(f"log retention: {len(running.readers)} topics, every {every:.0f} s, "
                  f"batches kept {s.kafka.embedded_retention_s:.0f} s after every reader committed them")
    running.run(done, every_s=every)
