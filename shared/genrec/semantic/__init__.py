"""Semantic IDs: residual-quantised item codes plus a uniqueness (disambiguation) level."""

from genrec.semantic.kmeans import kmeans
from genrec.semantic.rqvae import RQVAE
from genrec.semantic.tokenizer import FORMAT_VERSION, SemanticIdTokenizer, TokenizerConfig

__all__ = ["FORMAT_VERSION", "RQVAE", "SemanticIdTokenizer", "TokenizerConfig", "kmeans"]
