"""Item vectors for the Semantic-ID tokenizer: content (text), collaborative, or both."""

from genrec.embeddings.build import EmbeddingConfig, ItemEmbeddings, build_item_embeddings
from genrec.embeddings.collab import cooccurrence_embeddings
from genrec.embeddings.text import TextEmbedder, item_texts

__all__ = [
    "EmbeddingConfig",
    "ItemEmbeddings",
    "TextEmbedder",
    "build_item_embeddings",
    "cooccurrence_embeddings",
    "item_texts",
]
