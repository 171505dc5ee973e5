"""Model serving: the Triton/KServe ``genrec`` model, its code feed, export and client.

What other parts of genrec call (imports are lazy so that the recommend path does not
pull in torch)::

    from genrec.serving import ModelClient, ModelUnavailable      # recommend function
    ModelClient().recommend([["item-1", "item-7"]], user_ids=["u1"])

    from genrec.serving import assign_and_append                  # cold-start function
    assign_and_append(bundle.tokenizer, ["new-item"], embeddings)  # -> dense indices
    # or, with codes already assigned: append_items(["new-item"], codes)

    from genrec.serving import set_current                        # promotion
    set_current("artifacts/beauty", redis_client=...)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ModelClient": "genrec.serving.client",
    "ModelUnavailable": "genrec.serving.client",
    "InvalidModelRequest": "genrec.serving.client",
    "Recommendations": "genrec.serving.client",
    "CircuitBreaker": "genrec.serving.breaker",
    "append_items": "genrec.serving.feed",
    "assign_and_append": "genrec.serving.feed",
    "CodeFeed": "genrec.serving.feed",
    "CodesTaken": "genrec.serving.feed",
    "feed_for": "genrec.serving.feed",
    "ItemCatalog": "genrec.serving.catalog",
    "CatalogCache": "genrec.serving.catalog",
    "ServingArtifact": "genrec.serving.artifact",
    "resolve_current": "genrec.serving.artifact",
    "set_current": "genrec.serving.artifact",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'genrec.serving' has no attribute {name!r}")
