"""End-to-end: the generative model learns a planted rule; bundles persist; loop resumes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from genrec.data import leave_one_out, pad_histories
from genrec.data.synth import planted_successor
from genrec.model import RerankConfig
from genrec.training import TrainConfig, TrainedBundle, load_config


def test_planted_rule_reaches_high_recall_at_1(planted, planted_bundle) -> None:
    cfg, ds = planted
    split = leave_one_out(ds, planted_bundle.config.max_history)
    rec = planted_bundle.recommender(top_k=10)
    with torch.no_grad():
        items, _ = rec(torch.as_tensor(pad_histories(split.test_histories, planted_bundle.config.max_history)))
    recall_at_1 = float((items[:, 0].numpy() == split.test_targets).mean())
    assert recall_at_1 >= 0.9, recall_at_1
    # and the test metrics recorded in the bundle agree that the rule was learned
    assert planted_bundle.report["test"]["recall@5"] >= 0.9
    # sanity: the rule really is "successor of the last item"
    succ = planted_successor(cfg)
    last = np.array([h[-1] for h in split.test_histories])
    ids = split.item_index.ids
    assert all(ids[t] == f"I{succ[int(ids[i][1:])]:06d}" for i, t in zip(last[:20], split.test_targets[:20],
                                                                           strict=True))


def test_the_other_encoder_learns_the_planted_rule_and_serves_what_it_learned(planted, planted_bundle) -> None:
    """The encoder the planted bundle does not use, trained the same way: the causal one trains every
    position of a sequence from one pass, which must be what serving computes for that history."""
    from genrec.training import train_generative
    from tests.core.conftest import PLANTED_CONFIG

    _, ds = planted
    other = "bidirectional" if planted_bundle.config.model.encoder == "causal" else "causal"
    cfg = TrainConfig.model_validate({**PLANTED_CONFIG, "model": {**PLANTED_CONFIG["model"], "encoder": other}})
    bundle = train_generative(ds, cfg, progress=False)
    assert bundle.model.config.encoder == other
    assert bundle.report["test"]["recall@5"] >= 0.9


def test_bundle_round_trip_gives_identical_outputs(planted, planted_bundle, tmp_path: Path) -> None:
    _, ds = planted
    planted_bundle.save(tmp_path / "bundle")
    back = TrainedBundle.load(tmp_path / "bundle")
    split = leave_one_out(ds, back.config.max_history)
    hist = torch.as_tensor(pad_histories(split.test_histories[:64], back.config.max_history))
    with torch.no_grad():
        a_items, a_scores = planted_bundle.recommender(top_k=10)(hist)
        b_items, b_scores = back.recommender(top_k=10)(hist)
    assert torch.equal(a_items, b_items)
    assert torch.equal(a_scores, b_scores)
    assert list(back.item_index.ids) == list(planted_bundle.item_index.ids)
    assert back.report["validation"] == planted_bundle.report["validation"]
    assert back.collab_from_text is None  # interaction vectors: no text to predict them from
    # A hybrid bundle's text → collaborative map travels with it (the cold-start function loads it).
    imputer = np.arange(12, dtype=np.float32).reshape(4, 3)
    replace(planted_bundle, collab_from_text=imputer).save(tmp_path / "hybrid")
    assert np.array_equal(TrainedBundle.load(tmp_path / "hybrid").collab_from_text, imputer)


def test_recommend_by_external_ids_and_cold_start_item(planted, planted_bundle, tmp_path: Path) -> None:
    _, ds = planted
    planted_bundle.save(tmp_path / "b")
    bundle = TrainedBundle.load(tmp_path / "b")  # a private copy: add_items mutates
    seq = ds.interactions.groupby("user_id")["item_id"].apply(list).iloc[0]
    out = bundle.recommend([seq[:4]], k=5)
    assert len(out[0]) == 5 and all(iid not in seq[:4] for iid, _ in out[0])
    scores = [s for _, s in out[0]]
    assert scores == sorted(scores, reverse=True)
    # A new item gets a Semantic ID from its vector alone and is generatable at once:
    # give it the same vector as the item the model currently ranks first.
    top_item = out[0][0][0]
    n_before = bundle.code_table.n_items
    vec = _embedding_of(bundle, ds, top_item)
    new_idx = bundle.add_items(["NEW-1"], embeddings=vec[None])
    assert new_idx.tolist() == [n_before]
    new_codes = bundle.code_table.item_codes[n_before]
    top_codes = bundle.code_table.item_codes[bundle.item_index.index(top_item)]
    assert torch.equal(new_codes[:-1], top_codes[:-1]) and new_codes[-1] != top_codes[-1]
    # Its last code was never a training target: it is scored like its trained sibling, so it
    # ranks beside the item whose content it shares (the decoder alone would rank it near last).
    assert bundle.model.generator.trained_items == n_before
    ranked = dict(bundle.recommend([seq[:4]], k=5)[0])
    # Equal up to float32 rounding of two beams' sums (1.5e-8 apart on a CPU without AVX-512; the
    # decoder alone would put them whole log-prob units apart).
    assert ranked["NEW-1"] == pytest.approx(ranked[top_item], abs=1e-5)
    with pytest.raises(ValueError, match="already"):
        bundle.add_items(["NEW-1"], embeddings=vec[None])


def _embedding_of(bundle: TrainedBundle, ds, item_id: str) -> np.ndarray:
    from genrec.embeddings import build_item_embeddings

    split = leave_one_out(ds, bundle.config.max_history)
    emb = build_item_embeddings(ds.items, split.train, bundle.config.embeddings, progress=False)
    return emb.vectors[split.item_index.index(item_id)]


def test_training_resumes_from_checkpoint(planted, tmp_path: Path) -> None:
    from genrec.training import train_generative
    from tests.core.conftest import PLANTED_CONFIG

    _, ds = planted
    small = {**PLANTED_CONFIG, "checkpoint_dir": str(tmp_path / "ckpt"), "metrics_path": str(tmp_path / "m.jsonl")}
    small["optim"] = {**PLANTED_CONFIG["optim"], "epochs": 1, "max_steps_per_epoch": 5, "eval_users": 50}
    small["tokenizer"] = {**PLANTED_CONFIG["tokenizer"], "steps": 20}
    first = train_generative(ds, TrainConfig.model_validate(small), progress=False, evaluate_test=False)
    assert len(first.report["history"]) == 1
    small["optim"] = {**small["optim"], "epochs": 2}
    second = train_generative(ds, TrainConfig.model_validate(small), progress=False, evaluate_test=False)
    epochs = [h["epoch"] for h in second.report["history"]]
    assert epochs == [1, 2]  # epoch 1 came from the checkpoint, only epoch 2 was trained
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"epoch": 2' in lines[1]
    assert (tmp_path / "ckpt" / "last.pt").is_file() and (tmp_path / "ckpt" / "best.pt").is_file()


def test_a_head_trained_with_content_resumes_with_it_and_saves_without_it(planted, tmp_path: Path) -> None:
    """``id_content``: the checkpoints hold the content projection (a resumed run goes on with it); the
    bundle's head has it folded into its ID table, so it saves, loads and serves as any head does."""
    from genrec.training import train_generative
    from tests.core.conftest import PLANTED_CONFIG

    _, ds = planted
    small = {**PLANTED_CONFIG, "checkpoint_dir": str(tmp_path / "ckpt")}
    small["model"] = {**PLANTED_CONFIG["model"], "rerank": {"id_content": True}}
    small["optim"] = {**PLANTED_CONFIG["optim"], "epochs": 1, "max_steps_per_epoch": 5, "eval_users": 50}
    small["tokenizer"] = {**PLANTED_CONFIG["tokenizer"], "steps": 20}
    train_generative(ds, TrainConfig.model_validate(small), progress=False, evaluate_test=False)
    checkpoint = torch.load(tmp_path / "ckpt" / "last.pt", map_location="cpu", weights_only=False)
    assert "reranker.content_proj.weight" in checkpoint["model"]
    small["optim"] = {**small["optim"], "epochs": 2}
    bundle = train_generative(ds, TrainConfig.model_validate(small), progress=False, evaluate_test=False)
    assert [h["epoch"] for h in bundle.report["history"]] == [1, 2]
    assert bundle.model.reranker.content_proj is None
    assert not any("content" in key for key in bundle.model.state_dict())
    bundle.save(tmp_path / "bundle")
    loaded = TrainedBundle.load(tmp_path / "bundle")
    history = torch.tensor([[0, 1, 2, 3], [5, 6, 7, 8]])
    users = torch.zeros(2, dtype=torch.long)
    with torch.inference_mode():
        want, got = (b.recommender(top_k=5)(history, users) for b in (bundle, loaded))
    assert torch.equal(want[0], got[0])


def test_no_epoch_starts_past_the_time_limit_counting_earlier_sittings(planted, tmp_path: Path) -> None:
    from genrec.training import train_generative
    from tests.core.conftest import PLANTED_CONFIG

    _, ds = planted
    small = {**PLANTED_CONFIG, "checkpoint_dir": str(tmp_path / "ckpt")}
    small["optim"] = {**PLANTED_CONFIG["optim"], "epochs": 1, "max_steps_per_epoch": 5, "eval_users": 50}
    small["tokenizer"] = {**PLANTED_CONFIG["tokenizer"], "steps": 20}
    first = train_generative(ds, TrainConfig.model_validate(small), progress=False, evaluate_test=False)
    assert first.report["stopped_by"] == "epochs"
    # The checkpoint's epoch already took longer than a millisecond: a resumed run with more epochs
    # and that limit trains none, and keeps the first sitting's best weights.
    small["optim"] = {**small["optim"], "epochs": 3, "patience": 99, "max_minutes": 1e-5}
    second = train_generative(ds, TrainConfig.model_validate(small), progress=False, evaluate_test=False)
    assert [h["epoch"] for h in second.report["history"]] == [1]
    assert second.report["stopped_by"] == "time"
    assert second.report["validation"] == first.report["validation"]


def test_training_counts_the_flops_of_a_step() -> None:
    from genrec.training.config import OptimConfig
    from genrec.training.loop import fit

    torch.manual_seed(0)
    model = torch.nn.Linear(12, 7)
    x, y = torch.randn(10, 12), torch.randn(10, 7)

    def batches(epoch: int):
        for s in range(0, 10, 5):
            yield x[s : s + 5], y[s : s + 5]

    result = fit(model, batches, 2, lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), lambda: {"ndcg@10": 0.0},
                 OptimConfig(epochs=2, warmup_steps=1), torch.device("cpu"), progress=False)
    # a step: the forward product (2 x 5 x 12 x 7) and the weight's gradient (as many); the input needs none
    assert (result.flops_per_step, result.steps_per_epoch) == (2 * 2 * 5 * 12 * 7, 2)


def test_the_flops_of_a_step_are_the_epochs_mean_when_its_batches_differ() -> None:
    """Batches grouped by history length differ in size: the floor the quality report states must come
    from the epoch's mix of them, not from whichever batch came first."""
    from genrec.training.config import OptimConfig
    from genrec.training.loop import fit

    model = torch.nn.Linear(12, 7)
    sizes = [5] * 8 + [15] * 8  # the epoch's first half small batches, its second large ones

    def batches(epoch: int):
        for n in sizes:
            yield torch.randn(n, 12), torch.randn(n, 7)

    result = fit(model, batches, len(sizes), lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), lambda: {"ndcg@10": 0.0},
                 OptimConfig(epochs=1, warmup_steps=1), torch.device("cpu"), progress=False)
    assert result.flops_per_step == 2 * 2 * 10 * 12 * 7  # the mean batch: 10 rows


def test_patience_reads_a_running_mean_so_one_lucky_epoch_does_not_stop_a_rising_run() -> None:
    from genrec.training.config import OptimConfig
    from genrec.training.loop import epochs_without_gain, fit

    # A small validation set: a spike at epoch 2, then a curve that keeps rising under it.
    curve = [0.10, 0.20, 0.16, 0.17, 0.18, 0.19, 0.20, 0.22, 0.21]
    assert epochs_without_gain(curve[:4], 1) == 2 and epochs_without_gain(curve[:4], 3) == 0
    assert epochs_without_gain([0.1, 0.2, 0.2], 1) == 1  # a tie is no gain
    model = torch.nn.Linear(3, 1)
    x = torch.randn(4, 3)

    def run(window: int) -> tuple[list[int], int]:
        scores = iter(curve)
        result = fit(model, lambda epoch: iter([(x,)]), 1, lambda m, b: m(b[0]).pow(2).mean(),
                     lambda: {"ndcg@10": next(scores)}, OptimConfig(epochs=len(curve), warmup_steps=1, patience=2,
                                                                     patience_window=window),
                     torch.device("cpu"), progress=False)
        return [h["epoch"] for h in result.history], result.best_epoch

    assert run(1) == ([1, 2, 3, 4], 2)  # the raw score stops two epochs after the spike
    assert run(3) == (list(range(1, 10)), 8)  # the mean keeps rising; the best single epoch is kept


def test_a_small_dataset_gets_more_epochs_to_reach_its_minimum_steps(planted, tmp_path: Path) -> None:
    from genrec.training import train_generative
    from tests.core.conftest import PLANTED_CONFIG

    _, ds = planted
    small = {**PLANTED_CONFIG, "optim": {**PLANTED_CONFIG["optim"], "epochs": 1, "max_steps_per_epoch": 5,
                                         "min_steps": 12, "patience": 99, "eval_users": 50}}
    small["tokenizer"] = {**PLANTED_CONFIG["tokenizer"], "steps": 20}
    bundle = train_generative(ds, TrainConfig.model_validate(small), progress=False, evaluate_test=False)
    assert [h["epoch"] for h in bundle.report["history"]] == [1, 2, 3]  # ceil(12 / 5) epochs, not 1


def test_warm_start_adds_a_rerank_head_to_a_trained_model(
    planted, planted_bundle, planted_checkpoint, tmp_path: Path
) -> None:
    from genrec.training import train_generative
    from tests.core.conftest import PLANTED_CONFIG

    _, ds = planted
    # A head that reads the warm encoder's state, so one epoch shows what the warm start gave it.
    base = {**PLANTED_CONFIG, "model": {**PLANTED_CONFIG["model"], "rerank": {"user_state": "encoder"}},
            "optim": {**PLANTED_CONFIG["optim"], "epochs": 1}}
    # A few steps: from the source run's weights the model already knows the rule; from scratch it cannot.
    few = {**base, "optim": {**base["optim"], "max_steps_per_epoch": 3}}
    cold = train_generative(ds, TrainConfig.model_validate(few), progress=False, evaluate_test=False)
    warm_few = train_generative(ds, TrainConfig.model_validate({**few, "init_from": str(planted_checkpoint)}),
                                progress=False, evaluate_test=False)
    assert warm_few.report["history"][0]["val_recall@5"] >= 0.9 > cold.report["history"][0]["val_recall@5"] + 0.2
    cfg = TrainConfig.model_validate({**base, "init_from": str(planted_checkpoint),
                                      "checkpoint_dir": str(tmp_path / "ckpt")})
    asked = cfg.model_dump()
    warm = train_generative(ds, cfg, progress=False)
    # Configured once: training leaves the config alone; the weight tuned on validation is the
    # re-ranker's, and the artifact keeps it.
    assert cfg.model_dump() == asked and warm.config.model.rerank.weight == RerankConfig().weight
    assert warm.model.reranker.weight == warm.report["validation"]["rerank_weight"]
    warm.save(tmp_path / "bundle")
    assert TrainedBundle.load(tmp_path / "bundle").model.reranker.weight == warm.model.reranker.weight
    # Same Semantic IDs as the source run (its tokenizer, not a re-fit).
    assert torch.equal(warm.code_table.item_codes, planted_bundle.code_table.item_codes)
    assert (tmp_path / "ckpt" / "tokenizer" / "tokenizer.pt").is_file()
    assert warm.report["history"][0]["val_recall@5"] >= 0.9
    # The head re-ranks what the model serves, and after one epoch it already ranks the
    # true next item first far above chance (1 in 120) on its own.
    split = leave_one_out(ds, warm.config.max_history)
    hist = torch.as_tensor(pad_histories(split.test_histories, warm.config.max_history))
    with torch.no_grad():
        served = warm.recommender(top_k=10)(hist)[0][:, 0].numpy()
        item_codes = warm.code_table.item_codes
        memory, _ = warm.model.encode(hist, item_codes)
        every = torch.arange(len(item_codes)).expand(len(hist), -1)
        dense = warm.model.dense_scores(memory, hist, every, item_codes)
    assert (served == split.test_targets).mean() >= 0.9
    assert (dense.argmax(1).numpy() == split.test_targets).mean() >= 0.25
    # Each epoch's validation also reads either score alone on the same candidates: the warm
    # decoder already knows the rule, the one-epoch head not yet as well.
    first = warm.report["history"][0]
    assert first["val_generative_ndcg@10"] >= 0.9 > first["val_head_ndcg@10"] > 0.1


def test_warm_start_needs_a_checkpoint(planted, tmp_path: Path) -> None:
    from genrec.training import train_generative
    from tests.core.conftest import PLANTED_CONFIG

    _, ds = planted
    with pytest.raises(FileNotFoundError, match=r"best\.pt"):
        train_generative(ds, TrainConfig.model_validate({**PLANTED_CONFIG, "init_from": str(tmp_path)}),
                         progress=False)


def test_config_from_toml_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('max_history = 7\n[optim]\nepochs = 3\n[model]\nd_model = 32\nn_heads = 2\n')
    (tmp_path / "c.yaml").write_text("max_history: 9\ntokenizer:\n  codebook_size: 64\n")
    t = load_config(tmp_path / "c.toml")
    y = load_config(tmp_path / "c.yaml")
    assert (t.max_history, t.optim.epochs, t.model.d_model, t.model.max_history) == (7, 3, 32, 7)
    assert (y.max_history, y.tokenizer.codebook_size, y.sasrec.max_history) == (9, 64, 9)
    with pytest.raises(ValueError):
        TrainConfig.model_validate({"max_history": 0})


def test_baselines_on_planted_rule(planted) -> None:
    from genrec.evaluation import evaluate_recommender
    from genrec.model import MostPopular
    from genrec.training import train_sasrec
    from tests.core.conftest import PLANTED_CONFIG

    _, ds = planted
    cfg = TrainConfig.model_validate(
        {**PLANTED_CONFIG, "sasrec": {"d_model": 32, "n_heads": 1, "layers": 1, "d_ff": 64, "dropout": 0.0},
         "sasrec_optim": {"epochs": 15, "batch_size": 64, "lr": 5e-3, "warmup_steps": 10, "patience": 15}}
    )
    split = leave_one_out(ds, cfg.max_history)
    hist = pad_histories(split.test_histories, cfg.max_history)
    model, _ = train_sasrec(split, cfg, progress=False)
    sas = evaluate_recommender(lambda h, u: model(h, top_k=10), hist, split.test_targets)
    pop = MostPopular(torch.as_tensor(split.item_popularity()))
    mp = evaluate_recommender(lambda h, u: pop(h, top_k=10), hist, split.test_targets)
    assert sas["recall@10"] >= 0.8 > mp["recall@10"]
    items, _ = pop(torch.as_tensor(hist[:5]), top_k=10)
    for r in range(5):
        assert not set(items[r].tolist()) & set(hist[r][hist[r] >= 0].tolist())


def test_the_optimiser_is_fused_and_updates_as_the_unfused_one_does() -> None:
    """The unfused AdamW launched a few kernels per parameter group (half a GPU step, bench train-step) and
    on the CPU made a dozen passes over each parameter (three times the fused update's time): fused on both,
    with the unfused one's values."""
    from genrec.training.config import OptimConfig
    from genrec.training.loop import make_optimizer

    def model() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.ModuleDict({"item_emb": torch.nn.Embedding(10, 4), "out": torch.nn.Linear(4, 2)})

    assert make_optimizer(model(), OptimConfig(), torch.device("cuda")).defaults["fused"] is True
    fused_model, plain_model = model(), model()
    fused, plain = (make_optimizer(m, OptimConfig(weight_decay=0.1), torch.device("cpu"))
                    for m in (fused_model, plain_model))
    for group in plain.param_groups:  # the same groups, updated by torch's per-parameter loop
        group.update(fused=False, foreach=False)
    assert all(g["fused"] for g in fused.param_groups) and not any(g["fused"] for g in plain.param_groups)
    assert [g["weight_decay"] for g in fused.param_groups] == [0.1, 0.0]  # embeddings and biases undecayed
    assert [[p.shape for p in g["params"]] for g in fused.param_groups] == [
        [torch.Size([2, 4])], [torch.Size([10, 4]), torch.Size([2])]]  # out.weight | item_emb.weight, out.bias
    for step in range(5):
        for m, opt in ((fused_model, fused), (plain_model, plain)):
            x = torch.arange(3) + step
            opt.zero_grad()
            m["out"](m["item_emb"](x)).square().sum().backward()
            opt.step()
    for (name, a), b in zip(fused_model.named_parameters(), plain_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_a_config_that_states_its_epochs_trains_those_epochs() -> None:
    """The default schedule trains at least 4,000 steps (a small catalogue needs them); a short config
    (the demo, a test, `genrec train --epochs 1`) that states its epochs gets them, not 4,000 steps."""
    assert TrainConfig().optim.min_steps == 4000
    stated = TrainConfig.model_validate({"optim": {"epochs": 2, "lr": 3e-3}}).optim
    assert (stated.epochs, stated.min_steps, stated.lr) == (2, 0, 3e-3)
    assert TrainConfig.model_validate({"optim": {"epochs": 2, "min_steps": 100}}).optim.min_steps == 100
    assert TrainConfig.model_validate({"optim": {"eval_users": 10}}).optim.min_steps == 4000
    again = TrainConfig().optim.with_epochs(3)
    assert (again.epochs, again.min_steps, again.lr) == (3, 0, TrainConfig().optim.lr)


def _skewed_examples(encoder: str, batches: str):
    """Training rows of sequences of 3 items or more, most of them short (as real catalogues' histories
    are), batched ``batches`` for ``encoder``, about 64 targets a batch."""
    from genrec.data.splits import leave_one_out
    from genrec.data.synth import SynthConfig, generate_synthetic
    from genrec.training.generative import training_examples

    ds = generate_synthetic(SynthConfig(n_items=300, n_users=400, min_sequence_length=3, seed=5))
    cfg = {"max_history": 20, "model": {"encoder": encoder}, "optim": {"batch_size": 64, "batches": batches}}
    return training_examples(leave_one_out(ds, 20), TrainConfig.model_validate(cfg))


@pytest.mark.parametrize("encoder", ["causal", "bidirectional"])
@pytest.mark.parametrize("batches", ["random", "by_length"])
def test_an_epoch_trains_every_target_once_in_batches_of_about_the_batch_size(encoder: str, batches: str) -> None:
    """Every row comes once an epoch, each batch about ``batch_size`` targets, in an order that changes
    with the epoch and is the same for a resumed one; ``by_length`` batches are padded little."""
    examples = _skewed_examples(encoder, batches)
    epoch = list(examples.batches(seed=0, device=torch.device("cpu"))(0))
    assert len(epoch) == examples.steps_per_epoch()
    rows = np.concatenate(examples.epoch_batches(0, 0))
    assert sorted(rows.tolist()) == list(range(len(examples.targets)))
    most = int(examples.row_targets.max())
    trained = [int((t != -1).sum()) for _, t, _ in epoch]
    assert sum(trained) == examples.n_targets
    assert all(abs(n - 64) <= most for n in trained), trained
    assert np.array_equal(rows, np.concatenate(examples.epoch_batches(0, 0)))  # a resumed epoch: the same
    assert not np.array_equal(rows, np.concatenate(examples.epoch_batches(0, 1)))
    # A random batch pads its rows to its longest, a by-length one to about their own length.
    filled = sum(int((h != -1).sum()) for h, _, _ in epoch) / sum(h.numel() for h, _, _ in epoch)
    assert filled >= 0.9 if batches == "by_length" else filled < 0.6, filled
