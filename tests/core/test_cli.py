"""The `data`, `train` and `bench quality` commands on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genrec.cli import bench, data
from genrec.cli import train as train_cmd

runner = CliRunner()


def test_data_synth_and_info(tmp_path: Path) -> None:
    res = runner.invoke(data.app, ["synth", "--out", str(tmp_path / "s"), "--items", "50", "--users", "20"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s" / "interactions.csv").is_file() and (tmp_path / "s" / "items.csv").is_file()
    res = runner.invoke(data.app, ["info", str(tmp_path / "s"), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["items"] == 50 and info["users"] == 20 and info["has_event_types"] is True


def test_data_download_unknown_name_fails_cleanly(tmp_path: Path) -> None:
    res = runner.invoke(data.app, ["download", "no-such-set", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "unknown dataset" in res.output


def test_train_and_bench_quality_smoke(tmp_path: Path, monkeypatch) -> None:
    import typer

    from genrec.config import get_settings

    # Checkpoints and caches go under the settings' artifacts_dir: keep them in tmp.
    monkeypatch.setenv("GENREC_MODEL__ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()

    res = runner.invoke(data.app, ["synth", "--out", str(tmp_path / "d"), "--items", "80", "--users", "120",
                                   "--seed", "2"])
    assert res.exit_code == 0
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(
        "max_history = 6\ntop_k = 10\nval_beam_width = 10\ntest_beam_width = 10\n"
        '[embeddings]\nmode = "interactions"\ncollab_dim = 16\n'
        "[tokenizer]\nlevels = 2\ncodebook_size = 8\nlatent_dim = 8\nhidden_dims = [32]\nsteps = 50\n"
        "[model]\nd_model = 32\nn_heads = 2\nencoder_layers = 1\ndecoder_layers = 1\nd_ff = 64\n"
        "[optim]\nepochs = 1\nbatch_size = 64\n"
    )
    app = typer.Typer()
    app.command()(train_cmd.train)
    res = runner.invoke(app, ["--dataset", str(tmp_path / "d"), "--config", str(cfg), "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["n_items"] == 80 and (tmp_path / "a" / "metrics.jsonl").is_file()

    # The first two sittings train the generator alone; the third adds the re-ranking head.
    headless = tmp_path / "headless.toml"
    headless.write_text("[model]\nrerank = false\n")
    res = runner.invoke(bench.app, ["quality", "--dataset", str(tmp_path / "d"), "--budget", "smoke",
                                    "--out", str(tmp_path / "r"), "--config", str(headless)])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "r" / "quality-d.json").read_text())
    assert set(out["models"]) == {"MostPopular", "SASRec (full CE)", "genrec (generative retrieval)"}
    assert out["wall_seconds"] > 0 and out["device"].startswith("cpu")
    for r in out["models"].values():
        assert 0 <= r["test"]["ndcg@10"] <= r["test"]["recall@10"] <= 1
    for name in ("SASRec (full CE)", "genrec (generative retrieval)"):  # the trained ones' cost, and its floor
        r, cost = out["models"][name], out["models"][name]["training_cost"]
        assert cost["steps"] % r["epochs_run"] == 0 and cost["gflop_per_step"] > 0
        assert 0 < cost["floor_seconds"] <= cost["train_seconds"] and cost["x_floor"] >= 1
    assert "| MostPopular |" in (tmp_path / "r" / "quality-d.md").read_text()
    assert (tmp_path / "r" / "quality-d.png").stat().st_size > 1000
    [ckpt] = (tmp_path / "artifacts" / "checkpoints").glob("quality-d-smoke-seed0-????????")
    assert (ckpt / "last.pt").is_file() and (ckpt / "tokenizer" / "tokenizer.pt").is_file()

    # A second sitting with a bigger budget resumes genrec: its epochs continue the history,
    # the other models' rows and per-epoch lines stay, and the report says it was resumed.
    more = tmp_path / "more.toml"
    more.write_text("[model]\nrerank = false\n[optim]\nepochs = 3\n")
    res = runner.invoke(bench.app, ["quality", "--dataset", str(tmp_path / "d"), "--budget", "smoke",
                                    "--out", str(tmp_path / "r"), "--models", "genrec", "--config", str(more)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in (tmp_path / "r" / "quality-d-metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines if x["model"] == "genrec"] == [1, 2, 3]
    assert [x["epoch"] for x in lines if x["model"] == "sasrec"] == [1, 2]
    again = json.loads((tmp_path / "r" / "quality-d.json").read_text())
    assert set(again["models"]) == set(out["models"])
    # the cold-start table (run by default after all three models) stays, marked with its run
    assert out["cold_start"]["hidden_items"] == 8 and "genrec (generative retrieval)" in out["cold_start"]["models"]
    assert again["cold_start"]["from_run"] == out["started"]
    assert again["models"]["genrec (generative retrieval)"]["resumed"] is True
    assert "resumed from a checkpoint" in (tmp_path / "r" / "quality-d.md").read_text()
    # A config that changes the model is another run: it trains in its own folder, not from that checkpoint.
    other = tmp_path / "other.toml"
    other.write_text("[model]\nrerank = false\nd_ff = 64\n")
    res = runner.invoke(bench.app, ["quality", "--dataset", str(tmp_path / "d"), "--budget", "smoke",
                                    "--out", str(tmp_path / "r2"), "--models", "genrec", "--config", str(other)])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r2" / "quality-d.json").read_text())["models"][
        "genrec (generative retrieval)"]["resumed"] is False
    assert len(list(ckpt.parent.glob("quality-d-smoke-seed0-????????"))) == 2

    # A third sitting warm-starts a model with the re-ranking head (the default) from the averaged
    # best and last weights of that run: same Semantic IDs, its own checkpoints, the story kept.
    warm = tmp_path / "warm.toml"
    warm.write_text(f'init_from = ["{ckpt}/best.pt", "{ckpt}/last.pt"]\ncheckpoint_dir = "{tmp_path}/warm-ckpt"\n'
                    "[optim]\nepochs = 1\n")
    res = runner.invoke(bench.app, ["quality", "--dataset", str(tmp_path / "d"), "--budget", "smoke",
                                    "--out", str(tmp_path / "r"), "--models", "genrec", "--config", str(warm)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in (tmp_path / "r" / "quality-d-metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines if x["model"] == "genrec"] == [1, 2, 3]
    assert [x["epoch"] for x in lines if x["model"] == "genrec-warm"] == [1]
    gen = json.loads((tmp_path / "r" / "quality-d.json").read_text())["models"]["genrec (generative retrieval)"]
    assert gen["warm_start"]["source_epochs"] == 3 and gen["warm_start"]["new_parameters"] == [
        "history", "id_history", "id_tower_emb", "item_id_emb", "item_tower"]
    assert gen["train_seconds"] >= gen["warm_start"]["source_train_seconds"] > 0
    report = (tmp_path / "r" / "quality-d.md").read_text()
    assert "Warm start: 1 epochs from the 3-epoch run" in report and "weights averaged" in report
    assert "Re-ranking head on" in report
    kept = json.loads((tmp_path / "r" / "quality-d.json").read_text())["models"]["SASRec (full CE)"]
    assert kept["from_run"] == out["started"], "a row kept over two sittings names the run that made it"
    beams = json.loads((tmp_path / "r" / "quality-d.json").read_text())["models"][
        "genrec, beams in generative order (head off)"]
    assert 0 <= beams["test"]["ndcg@10"] <= beams["test"]["recall@10"] <= 1
    assert (tmp_path / "warm-ckpt" / "tokenizer" / "tokenizer.pt").is_file()

    # The cold-start table alone (it trains both models again without a tenth of the items): a fresh table,
    # every model's row kept as it was.
    before = json.loads((tmp_path / "r" / "quality-d.json").read_text())
    res = runner.invoke(bench.app, ["quality", "--dataset", str(tmp_path / "d"), "--budget", "smoke",
                                    "--out", str(tmp_path / "r"), "--models", "cold-start", "--config", str(headless)])
    assert res.exit_code == 0, res.output
    after = json.loads((tmp_path / "r" / "quality-d.json").read_text())
    assert after["cold_start"]["hidden_items"] == 8 and "from_run" not in after["cold_start"]
    assert {k: r["test"] for k, r in after["models"].items()} == {k: r["test"] for k, r in before["models"].items()}
    res = runner.invoke(bench.app, ["quality", "--dataset", str(tmp_path / "d"), "--budget", "smoke",
                                    "--out", str(tmp_path / "r"), "--models", "genrek"])
    assert res.exit_code != 0 and "genrek" in res.output and "cold-start" in res.output
    get_settings.cache_clear()


def test_bench_quality_over_seeds_reports_mean_and_spread(tmp_path: Path, monkeypatch) -> None:
    from genrec.config import get_settings

    monkeypatch.setenv("GENREC_MODEL__ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    assert runner.invoke(data.app, ["synth", "--out", str(tmp_path / "d"), "--items", "60", "--users", "90",
                                    "--seed", "3"]).exit_code == 0
    res = runner.invoke(bench.app, ["quality", "--dataset", str(tmp_path / "d"), "--budget", "smoke", "--seeds",
                                    "0,1", "--models", "mostpop,sasrec", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    runs = [json.loads((tmp_path / "r" / name).read_text()) for name in ("quality-d.json", "quality-d-seed1.json")]
    assert [r["seed"] for r in runs] == [0, 1]
    summary = json.loads((tmp_path / "r" / "quality-d-seeds.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["missing_seeds"] == []
    sas = [r["models"]["SASRec (full CE)"]["test"]["recall@10"] for r in runs]
    spread = summary["models"]["SASRec (full CE)"]["recall@10"]
    assert spread["values"] == sas
    assert spread["mean"] == pytest.approx(sum(sas) / 2)
    assert spread["std"] == pytest.approx(abs(sas[0] - sas[1]) / 2**0.5)  # the sample standard deviation
    report = (tmp_path / "r" / "quality-d-seeds.md").read_text()
    assert "| SASRec (full CE) |" in report and " ± " in report
    assert (tmp_path / "r" / "quality-d-seeds.png").stat().st_size > 1000

    res = runner.invoke(bench.app, ["quality", "--dataset", str(tmp_path / "d"), "--seeds", "0,x"])
    assert res.exit_code == 2 and "--seeds" in res.output


def test_bench_train_step_times_the_trainers_step_by_batch_size(tmp_path: Path) -> None:
    res = runner.invoke(data.app, ["synth", "--out", str(tmp_path / "d"), "--items", "60", "--users", "80",
                                   "--seed", "3"])
    assert res.exit_code == 0
    res = runner.invoke(bench.app, ["train-step", "--dataset", str(tmp_path / "d"), "--budget", "smoke",
                                    "--batches", "8,32", "--seconds", "0.2", "--device", "cpu",
                                    "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "r" / "train-step-d-smoke-cpu.json").read_text())
    assert [row["batch"] for row in r["rows"]] == [8, 32]
    for row in r["rows"]:
        assert row["ms_per_step"] > 0
        # a step trains about `batch` next items (whole sequence rows: as many as make that on average)
        assert row["examples_per_s"] * row["ms_per_step"] / 1000 == pytest.approx(row["batch"], rel=0.5)
        assert row["epoch_s"] == pytest.approx(r["examples_per_epoch"] / row["examples_per_s"], rel=0.05, abs=0.1)
    assert "| 32 |" in (tmp_path / "r" / "train-step-d-smoke-cpu.md").read_text()
    # another model, by a config over the budget, in files of its own, timed on the same next items
    (tmp_path / "windows.toml").write_text('[model]\nencoder = "bidirectional"\n')
    res = runner.invoke(bench.app, ["train-step", "--dataset", str(tmp_path / "d"), "--budget", "smoke",
                                    "--batches", "32", "--seconds", "0.2", "--device", "cpu", "--out",
                                    str(tmp_path / "r"), "--config", str(tmp_path / "windows.toml"),
                                    "--label", "windows"])
    assert res.exit_code == 0, res.output
    windows = json.loads((tmp_path / "r" / "train-step-d-smoke-cpu-windows.json").read_text())
    assert windows["model"]["encoder"] == "bidirectional" and r["model"]["encoder"] == "causal"
    assert windows["examples_per_epoch"] == r["examples_per_epoch"]
    assert "bidirectional encoder" in (tmp_path / "r" / "train-step-d-smoke-cpu-windows.md").read_text()
    res = runner.invoke(bench.app, ["train-step", "--dataset", str(tmp_path / "d"), "--budget", "huge"])
    assert res.exit_code != 0 and "--budget" in res.output
