"""LLM enrichment: structured tags, summaries and attributes for items, via any OpenAI-compatible API."""
