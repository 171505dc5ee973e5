"""The OIP v2 contract of the real local Triton server: valid top-K, batching, errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def _url(model_server) -> str:
    return str(model_server["settings"].model_server.url)


def _infer(url: str, seq: np.ndarray, exclude: np.ndarray | None = None):
    client = httpclient.InferenceServerClient(url, network_timeout=60)
    inputs = [httpclient.InferInput("user_sequence", list(seq.shape), "INT64")]
    inputs[0].set_data_from_numpy(seq.astype(np.int64))
    if exclude is not None:
        inputs.append(httpclient.InferInput("exclude", list(exclude.shape), "INT64"))
        inputs[1].set_data_from_numpy(exclude.astype(np.int64))
    res = client.infer("genrec", inputs)
    return res.as_numpy("recommendations"), res.as_numpy("scores"), res.as_numpy("artifact_version")


def test_server_without_artifact_answered_503_with_reason(model_server) -> None:
    before = model_server["before_promotion"]
    assert before["live"] and not before["ready"]
    assert "503" in before["error"] or "not ready" in before["error"]
    assert "no trained artifact" in before["error"] and "genrec serve promote" in before["error"]


def test_model_config_is_the_contract(model_server) -> None:
    cfg = httpx.get(f"http://{_url(model_server)}/v2/models/genrec/config", timeout=10).json()
    assert cfg["max_batch_size"] == 64
    assert cfg["dynamic_batching"]["preferred_batch_size"] == [8, 16, 32, 64]
    assert int(cfg["dynamic_batching"]["max_queue_delay_microseconds"]) == 100
    inputs = {i["name"]: i for i in cfg["input"]}
    assert inputs["user_sequence"]["data_type"] == "TYPE_INT64"
    assert [int(d) for d in inputs["user_sequence"]["dims"]] == [-1]
    assert inputs["user_token"]["optional"] and inputs["exclude"]["optional"]
    outputs = {o["name"]: o for o in cfg["output"]}
    assert [int(d) for d in outputs["recommendations"]["dims"]] == [50]
    assert outputs["scores"]["data_type"] == "TYPE_FP32"


def test_topk_is_valid_sorted_and_excludes_history(model_server) -> None:
    art = model_server["artifact"]
    rng = np.random.default_rng(0)
    seq = rng.integers(0, art.n_items, size=(4, 6))
    seq[1, :4] = -1
    items, scores, version = _infer(_url(model_server), seq)
    assert items.shape == (4, 50) and items.dtype == np.int64 and scores.dtype == np.float32
    assert version[0, 0].decode() == art.version
    for row in range(4):
        valid = items[row] >= 0
        assert valid.all(), "150 items minus a few seen ones leave 50 to recommend"
        assert (items[row] < art.n_items).all()
        assert len(set(items[row].tolist())) == 50
        assert not set(items[row].tolist()) & set(seq[row][seq[row] >= 0].tolist())
        assert np.all(np.diff(scores[row]) <= 1e-6), "scores must be descending"
        assert np.isfinite(scores[row]).all()


def test_exclude_input_and_short_catalogue_padding(model_server) -> None:
    art = model_server["artifact"]
    seq = np.array([[0, 1, 2]])
    exclude = np.arange(3, art.n_items - 10)[None]  # leaves 10 items recommendable
    items, scores, _ = _infer(_url(model_server), seq, exclude)
    assert (items[0, :10] >= art.n_items - 10).all()
    assert (items[0, 10:] == -1).all() and np.isneginf(scores[0, 10:]).all()


def test_concurrent_ragged_requests_match_single_requests(model_server) -> None:
    """Dynamic batching merges requests of different lengths: answers must not change."""
    url, art = _url(model_server), model_server["artifact"]
    rng = np.random.default_rng(1)
    seqs = [rng.integers(0, art.n_items, size=(1 + i % 3, 2 + i % 5)) for i in range(12)]
    alone = [_infer(url, s)[0] for s in seqs]
    with ThreadPoolExecutor(12) as pool:
        together = list(pool.map(lambda s: _infer(url, s)[0], seqs))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        ({"inputs": [{"name": "user_sequence", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}, "INT64"),
        ({"inputs": [{"name": "user_sequence", "datatype": "INT64", "shape": [2], "data": [1, 2]}]}, "shape"),
        ({"inputs": [{"name": "exclude", "datatype": "INT64", "shape": [1, 1], "data": [1]}]},
         "missing required input 'user_sequence'"),
        ({"inputs": [{"name": "user_sequence", "datatype": "INT64", "shape": [1, 2], "data": [1, -7]}]},
         "padding is -1"),
        ({"inputs": [{"name": "user_sequence", "datatype": "INT64", "shape": [1, 1025], "data": [1] * 1025}]},
         "at most 1024"),
        ({"inputs": [{"name": "user_sequence", "datatype": "INT64", "shape": [1, 2], "data": [1, 2]},
                     {"name": "user_token", "datatype": "INT64", "shape": [1, 1], "data": [99]}]}, "user_token"),
        ({"inputs": [{"name": "user_sequence", "datatype": "INT64", "shape": [2, 2], "data": [1, 2, 3, 4]},
                     {"name": "exclude", "datatype": "INT64", "shape": [1, 1], "data": [1]}]}, "batch size"),
    ],
    ids=["dtype", "no-batch-dim", "missing-input", "negative-index", "too-long", "user-token-range",
         "exclude-batch"],
)
def test_malformed_requests_get_400_with_a_clear_message(model_server, body: dict, expect: str) -> None:
    resp = httpx.post(f"http://{_url(model_server)}/v2/models/genrec/infer", json=body, timeout=30)
    assert resp.status_code == 400, resp.text
    assert expect in resp.json()["error"]
