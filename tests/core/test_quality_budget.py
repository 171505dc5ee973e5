"""The quality budgets: what the default command trains, and the committed configs that change it."""

from __future__ import annotations

from pathlib import Path

from genrec.bench.quality import BUDGETS, CPU_VALIDATION_USERS, budget_config
from genrec.training import TrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "bench" / "configs"


def test_genrec_train_and_every_budget_train_the_measured_head() -> None:
    """The head the quality runs measured best (item IDs, its own history tower, its own best 50 items
    joining the beam) is what `genrec train`, the pipeline and every budget train unless told not to."""
    head = TrainConfig().model.rerank
    assert head is not None and head.item_ids and head.user_state == "history" and head.catalogue_top == 50
    assert all(budget_config(name).model.rerank == head for name in BUDGETS)


def test_genrec_train_trains_the_model_the_cpu_budget_measured() -> None:
    """The quality reports are the cpu budget's runs: `genrec train` and the pipeline (``TrainConfig()``)
    must build that same network, and the serving benchmarks' production model is it too (they read
    ``GenerativeConfig``'s defaults). The default decoder was once twice as wide as the one measured."""
    assert budget_config("cpu").model == TrainConfig().model


def test_genrec_train_follows_the_schedule_the_cpu_budget_measured() -> None:
    """The same for the schedule (epochs, learning rate, warm-up, patience, the floor of steps): it
    was the budget's own while `genrec train` trained 20 epochs at half the learning rate."""
    measured = budget_config("cpu").optim.model_dump(exclude={"eval_users"})
    assert measured == TrainConfig().optim.model_dump(exclude={"eval_users"})
    assert budget_config("cpu").optim.eval_users == CPU_VALIDATION_USERS  # the bench's subset, both models


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
