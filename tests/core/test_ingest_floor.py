"""The text model's floor in the ingest report: counted FLOPs follow the text's length, and the
items/s ceiling is the machine's cores over the measured time per item."""

from __future__ import annotations

import pytest

from genrec.bench.ingest_floor import markdown, text_model_floor


def test_the_floor_counts_more_work_for_longer_texts() -> None:
    short = text_model_floor(["title: Red Mascara 1; category: Beauty"] * 4, rounds=1)
    long = text_model_floor(["title: Red Mascara 1; category: Beauty; description: " + "a long-lasting formula " * 12]
                            * 4, rounds=1)
    assert 0 < short["gflop_per_item"] < long["gflop_per_item"]
    for f in (short, long):
        assert f["items_per_s_all_cores"] == pytest.approx(f["cores"] * 1000 / f["cpu_ms_per_item"], rel=0.02)
    text = "\n".join(markdown(long, target=200))
    assert f"**{long['items_per_s_all_cores']} items/s**" in text and "target 200" in text
