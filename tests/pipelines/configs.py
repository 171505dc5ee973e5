"""Training configs for the pipeline tests."""

from __future__ import annotations

from tests.core.conftest import PLANTED_CONFIG

# The core tests' planted-rule config (trains in seconds on 2 cores, learns the rule), fewer epochs.
GOOD_TRAIN = {**PLANTED_CONFIG, "optim": {**PLANTED_CONFIG["optim"], "epochs": 8}}
# One optimiser step: a candidate that is certainly worse than GOOD_TRAIN's.
WEAK_TRAIN = {**GOOD_TRAIN, "tokenizer": {**GOOD_TRAIN["tokenizer"], "steps": 10},
              "optim": {"epochs": 1, "batch_size": 64, "max_steps_per_epoch": 1}}
