"""Generative retrieval model, constrained beam search, and baselines."""

from genrec.model.beam import constrained_beam_search, exclusion_keys
from genrec.model.code_table import CodeTable, pack_codes
from genrec.model.generative import GenerativeConfig, GenerativeRecommender, TigerModel, user_bucket
from genrec.model.sasrec import MostPopular, SASRec, SASRecConfig

__all__ = [
    "CodeTable",
    "GenerativeConfig",
    "GenerativeRecommender",
    "MostPopular",
    "SASRec",
    "SASRecConfig",
    "TigerModel",
    "constrained_beam_search",
    "exclusion_keys",
    "pack_codes",
    "user_bucket",
]
