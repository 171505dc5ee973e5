"""The quality budgets: what the default command trains, and the committed configs that change it."""

from __future__ import annotations

from pathlib import Path

from genrec.bench.quality import budget_config

CONFIGS = Path(__file__).resolve().parents[2] / "bench" / "configs"


def test_the_cpu_budget_trains_the_reranking_head_with_item_ids() -> None:
    head = budget_config("cpu").model.rerank
    assert head is not None and head.item_ids and head.user_state == "history" and head.catalogue_top == 50


def test_a_config_restores_the_beam_only_head() -> None:
    cfg = budget_config("cpu", CONFIGS / "rerank-beam-only.toml")
    default = budget_config("cpu")
    assert cfg.model.rerank.catalogue_top == 0
    assert cfg.model.rerank.model_dump(exclude={"catalogue_top"}) == default.model.rerank.model_dump(
        exclude={"catalogue_top"})


def test_genrec_and_sasrec_validate_on_the_same_users() -> None:
    """The cost at equal quality reads genrec's validation curve against SASRec's best: both trainers
    draw their subset as ``eval_subset(users, eval_users, seed)``, so equal sizes are the same users."""
    cfg = budget_config("cpu", seed=1)
    assert cfg.optim.eval_users == cfg.sasrec_optim.eval_users


def test_a_config_turns_the_head_off_and_keeps_the_rest_of_the_budget() -> None:
    cfg = budget_config("cpu", CONFIGS / "no-rerank.toml", seed=3)
    default = budget_config("cpu", seed=3)
    assert cfg.model.rerank is None
    assert cfg.model.model_dump(exclude={"rerank"}) == default.model.model_dump(exclude={"rerank"})
    assert cfg.optim == default.optim
