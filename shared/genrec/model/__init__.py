"""Generative retrieval model, constrained beam search, and baselines."""

from genrec.model.beam import constrained_beam_search, exclusion_keys
from genrec.model.code_table import CodeTable, pack_codes
from genrec.model.generative import GenerativeConfig, GenerativeRecommender, TigerGenerator, TigerModel, user_bucket
from genrec.model.rerank import RerankConfig, Reranker
from genrec.model.sasrec import MostPopular, SASRec, SASRecConfig

__all__ = [
    "CodeTable",
    "GenerativeConfig",
    "GenerativeRecommender",
    "MostPopular",
    "RerankConfig",
    "Reranker",
    "SASRec",
    "SASRecConfig",
    "TigerGenerator",
    "TigerModel",
    "constrained_beam_search",
    "exclusion_keys",
    "pack_codes",
    "user_bucket",
]
