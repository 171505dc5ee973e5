"""The Spark feature job against the in-memory loader, and its handling of messy streams."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genrec.data import SynthConfig, generate_synthetic, leave_one_out, load_dataset, save_dataset
from genrec.data.schema import Catalog, InteractionDataset
from genrec.pipelines.features import FeatureParams
from genrec.pipelines.featureset import FeatureSet
from genrec.pipelines.job import run_features, run_features_from_dataset
from genrec.pipelines.schema import EVENT_SCHEMA, ITEM_SCHEMA

pytestmark = pytest.mark.slow


def _lists(col) -> list[list[int]]:
    return [list(map(int, x)) for x in col]


def test_spark_splits_equal_the_in_memory_loader(spark, tmp_path: Path) -> None:
    ds = generate_synthetic(SynthConfig(n_items=60, n_users=60, seed=3))
    inter = ds.interactions
    # Users with 1 and 2 events, and items missing from the catalogue (indexed by first use).
    extra = pd.DataFrame({"user_id": ["Z-one", "Z-two", "Z-two"], "item_id": ["X-new-2", "I000001", "X-new-1"],
                          "timestamp": [1_600_000_000, 1_600_000_000, 1_600_000_100],
                          "event_type": ["view"] * 3, "value": [1.0] * 3})
    items = ds.items[~ds.items["item_id"].isin(["I000005", "I000007"])]
    folder = save_dataset(InteractionDataset(Catalog(items.reset_index(drop=True)),
                                             pd.concat([inter, extra], ignore_index=True)), tmp_path / "ds")
    # save_dataset writes the full catalogue (with_items); write the trimmed one back.
    items.to_csv(folder / "items.csv", index=False)

    manifest = run_features_from_dataset(folder, tmp_path / "out", FeatureParams(max_history=5), spark=spark)
    expected = leave_one_out(load_dataset(folder), max_history=5)
    fs = FeatureSet.open(tmp_path / "out")
    got = fs.split()

    assert list(got.item_index.ids) == list(expected.item_index.ids)
    assert got.user_ids == expected.user_ids
    assert all(np.array_equal(a, b) for a, b in zip(got.sequences, expected.sequences, strict=True))
    table = fs.splits_table()
    assert table["user_id"].tolist() == expected.user_ids
    assert _lists(table["train"]) == [s.tolist() for s in expected.train]
    assert _lists(table["valid_history"]) == [h.tolist() for h in expected.valid_histories]
    assert _lists(table["test_history"]) == [h.tolist() for h in expected.test_histories]
    assert table["valid_target"].tolist() == expected.valid_targets.tolist()
    assert table["test_target"].tolist() == expected.test_targets.tolist()

    c = manifest["counts"]
    assert (c["users"], c["users_in_split"], c["single_event_users"], c["short_users"]) == (62, 60, 1, 2)
    assert c["items"] == len(expected.item_index) and c["catalog_items"] == len(items)
    assert c["event_only_items"] == len(expected.item_index) - len(items) >= 2  # at least the two X- items
    short = fs.sequences.set_index("user_id").loc[["Z-one", "Z-two"]]
    assert short["length"].tolist() == [1, 2] and not short["in_split"].any()
    # Item statistics count every clean event, short users included.
    stats = fs.items.set_index("item_id")
    assert stats.loc["X-new-2", "interactions"] == 1 and not stats.loc["X-new-2", "in_catalog"]
    assert stats["interactions"].sum() == c["positive_events"] == len(inter) + 3
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk["hashes"]["sequences"] == manifest["hashes"]["sequences"]
    assert on_disk["hashes"]["files"] and on_disk["time_range"]["min_ts"].startswith("2020-")
    # The trainer's view: catalogue rows in index order, with the text of catalogue items.
    data = fs.dataset()
    assert list(data.items["item_id"]) == list(expected.item_index.ids)
    assert data.items.set_index("item_id").loc["I000000", "title"] == ds.items.iloc[0]["title"]


T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _event(eid: str, user: str, item: str, minute: int, *, etype: str = "view", value: float | None = None,
           received: int | None = None, source: str = "web") -> dict:
    ts = T0 + timedelta(minutes=minute)
    return {"event_id": eid, "source": source, "user_id": user, "item_id": item, "event_type": etype,
            "value": value, "ts": ts, "received_at": T0 + timedelta(minutes=received if received is not None
                                                                   else minute, seconds=5)}


def _write(rows: list[dict], folder: Path, schema: pa.Schema = EVENT_SCHEMA) -> Path:
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "part-0.parquet")
    return folder


def _clean_stream() -> list[dict]:
    rows = [_event(f"a{i}", "alice", f"i{i}", i) for i in range(6)]
    rows += [_event(f"b{i}", "bob", f"i{5 - i}", 10 * i) for i in range(4)]
    rows += [_event("c0", "carol", "i3", 7)]  # a user with one event
    # Same event id from another source is a different event.
    rows += [_event("a0", "app", "i9", 100, source="app"), _event("a1", "app", "i8", 101, source="app"),
             _event("a2", "app", "i7", 102, source="app")]
    return rows


def _messy_stream() -> list[dict]:
    rows = _clean_stream()
    late = rows.pop(2)  # alice's third event arrives an hour after the rest
    late["received_at"] = T0 + timedelta(hours=2)
    rows.append(late)
    dup = dict(rows[0], received_at=T0 + timedelta(hours=3), ts=T0 + timedelta(days=1))  # redelivery, re-stamped
    rows += [
        dup, dict(rows[7]),  # a replayed copy of bob's event
        _event("s1", "alice", "i7", 3, etype="skip"), _event("r1", "bob", "i6", 15, etype="rating", value=2.0),
        _event("bad", None, "i1", 4),  # no user: invalid
    ]
    return list(reversed(rows))  # file order means nothing


def test_duplicates_late_and_out_of_order_events_do_not_change_sequences(spark, tmp_path: Path) -> None:
    params = FeatureParams(max_history=3)
    base = run_features(_write(_clean_stream(), tmp_path / "clean"), None, tmp_path / "out-clean", params,
                        spark=spark)
    messy = run_features(_write(_messy_stream(), tmp_path / "messy"), None, tmp_path / "out-messy", params,
                         spark=spark)
    assert messy["hashes"]["sequences"] == base["hashes"]["sequences"]
    assert messy["hashes"]["events"] == base["hashes"]["events"]
    a, b = FeatureSet.open(tmp_path / "out-clean"), FeatureSet.open(tmp_path / "out-messy")
    pd.testing.assert_frame_equal(a.splits_table(), b.splits_table())
    seqs = b.sequences.set_index("user_id")
    assert list(seqs.loc["alice", "item_ids"]) == [f"i{i}" for i in range(6)]
    assert list(seqs.loc["bob", "item_ids"]) == ["i5", "i4", "i3", "i2"]
    assert list(seqs.loc["app", "item_ids"]) == ["i9", "i8", "i7"]
    assert not seqs.loc["carol", "in_split"] and seqs.loc["carol", "length"] == 1
    assert "carol" not in set(b.splits_table()["user_id"])
    c = messy["counts"]
    assert (c["raw_events"], c["duplicate_events"], c["non_positive_events"], c["invalid_events"]) == (19, 2, 2, 1)
    assert (c["late_events"], c["single_event_users"], c["users_in_split"]) == (1, 1, 3)
    assert base["counts"]["late_events"] == 0
    split = b.split()
    assert split.user_ids == ["alice", "app", "bob"]
    assert split.item_index.ids[split.test_targets].tolist() == ["i5", "i7", "i2"]

    # The same stream as a Kafka topic export: CloudEvent envelope, payload as JSON.
    kafka = [{"id": r["event_id"], "source": r["source"], "time": r["ts"].isoformat(),
              "data": json.dumps({"user_id": r["user_id"], "item_id": r["item_id"], "event_type": r["event_type"],
                                  "value": r["value"]})} for r in _clean_stream()]
    folder = tmp_path / "kafka"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(kafka), folder / "part-0.parquet")
    from_kafka = run_features(folder, _write([{"item_id": "i0", "position": 0, "title": "zero"}], tmp_path / "it",
                                             ITEM_SCHEMA), tmp_path / "out-kafka", params, spark=spark)
    assert from_kafka["hashes"]["sequences"] == base["hashes"]["sequences"]
    assert FeatureSet.open(tmp_path / "out-kafka").items["item_id"].iloc[0] == "i0"  # catalogue first
