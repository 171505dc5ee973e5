"""The load benchmark's CPU budget: py-spy samples named by what the code was doing."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import psutil

from genrec.bench.profile import NATIVE, OTHER, SamplingProfiler, budget, classify, parse_raw


def test_a_sample_is_named_by_its_innermost_telling_frame() -> None:
    recommend = "for_user (/work/main/shared/genrec/recommend/service.py:80)"
    redis_call = "execute_command (/x/site-packages/redis/client.py:500)"
    socket = "recv (socket.py:10)"
    assert classify(["main (<string>:1)", recommend, redis_call, socket]) == (
        "Redis client", "genrec.recommend.service.for_user")
    # genrec's own code names itself; a library under it names the sample, not its caller.
    assert classify(["main (<string>:1)", recommend]) == ("genrec: genrec.recommend.service",
                                                         "genrec.recommend.service.for_user")
    assert classify(["main (<string>:1)", socket]) == (OTHER, "(outside genrec)")
    # genrec installed into an image's site-packages is still our code.
    assert classify(["f (/v/site-packages/genrec/stores/redis_keys.py:3)"])[0] == "genrec: genrec.stores.redis_keys"


def test_budget_splits_each_process_per_unit_and_leaves_native_time() -> None:
    raw = "a (genrec/recommend/service.py:1);b (json/encoder.py:2) 30\na (genrec/recommend/service.py:1) 10\n"
    samples = {"recommend": parse_raw(raw)}
    b = budget({"recommend": 2.0, "redis": 0.5}, samples, units=100, unit="request", rate_hz=100)
    rec = b["processes"]["recommend"]
    assert rec["cpu_ms"] == 20.0 and rec["samples"] == 40
    # 40 samples at 100 Hz = 0.4 s of Python over 100 requests = 4 ms each; the rest is native.
    assert rec["categories"] == {NATIVE: 16.0, "JSON": 3.0, "genrec: genrec.recommend.service": 1.0}
    assert b["processes"]["redis"] == {"cpu_ms": 5.0, "samples": 0}


def test_the_profiler_samples_a_real_busy_process(tmp_path: Path) -> None:
    busy = subprocess.Popen([sys.executable, "-c",
                             "import json\nwhile True: json.dumps({'k': list(range(200))}, sort_keys=True)"])
    try:
        profiler = SamplingProfiler({"busy": psutil.Process(busy.pid)}, tmp_path, duration_s=2, rate_hz=50)
        profiler.start()
        samples = profiler.samples()["busy"]
    finally:
        busy.kill()
    cats: Counter[str] = Counter()
    for (cat, _), n in samples.items():
        cats[cat] += n
    assert sum(cats.values()) >= 40  # ~100 at 50 Hz for 2 s, while holding the GIL
    assert cats.most_common(1)[0][0] == "JSON", cats
