"""Knative function `llm-enrichment`: item upserts → LLM enrichment → item.enriched events.

Thin by design: the behaviour lives in genrec.apps.llm_enrichment.
"""

from genrec.apps.knative import AsgiFunction
from genrec.apps.llm_enrichment import create_app


def new() -> AsgiFunction:
    return AsgiFunction(create_app)
