"""Item enrichment with a content-hash cache and a per-day request budget (both in Redis)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from genrec.config import Settings
from genrec.enrichment.client import JsonChat
from genrec.enrichment.router import Task, model_for
from genrec.events.contracts import ItemUpsertedData
from genrec.stores import redis_keys as keys

PROMPT_VERSION = "v1"  # part of the cache key: a new prompt re-enriches
CACHE_TTL_S = 30 * 24 * 3600

SYSTEM = (
    "You normalise e-commerce catalogue items. Answer with one JSON object only, with keys: "
    '"tags" (3-12 short lowercase tags: product type, use, audience, style), '
    '"summary" (one factual sentence, at most 30 words), '
    '"attributes" (object of normalised string attributes such as "size", "colour", "material", "skin_type"; '
    "only what the text states). Never invent facts."
)


class Enrichment(BaseModel):
    model_config = ConfigDict(extra="ignore")
    tags: list[str] = Field(default_factory=list, max_length=20)
    summary: str = Field(default="", max_length=400)
    attributes: dict[str, str] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(t.strip().lower()[:40] for t in tags if t and t.strip()))

    @field_validator("attributes", mode="before")
    @classmethod
    def _stringify(cls, attrs: object) -> dict[str, str]:
        if not isinstance(attrs, dict):
            return {}
        return {str(k)[:40]: str(v)[:100] for k, v in list(attrs.items())[:30] if v not in (None, "")}


@dataclass(frozen=True)
class EnrichmentResult:
    enrichment: Enrichment | None
    model: str
    cached: bool
    skipped_reason: str = ""


def content_hash(item: ItemUpsertedData) -> str:
    text = json.dumps([item.title, item.description, item.category_path, item.brand, item.attributes],
                      sort_keys=True, default=str)
    return hashlib.sha256(f"{PROMPT_VERSION}\0{text}".encode()).hexdigest()


def item_prompt(item: ItemUpsertedData) -> str:
    parts = [f"Title: {item.title}"]
    if item.brand:
        parts.append(f"Brand: {item.brand}")
    if item.category_path:
        parts.append(f"Category: {item.category_path}")
    if item.price is not None:
        parts.append(f"Price: {item.price}")
    if item.description:
        parts.append(f"Description: {item.description[:4000]}")
    if item.attributes:
        parts.append(f"Attributes: {json.dumps(item.attributes, default=str)[:2000]}")
    return "\n".join(parts)


class ItemEnricher:
    def __init__(self, s: Settings, redis_client, chat: JsonChat | None = None) -> None:
        self.s = s
        self.r = redis_client
        self.chat = chat if chat is not None else (JsonChat(s.llm) if s.llm.base_url else None)

    def status(self) -> dict[str, object]:
        if self.chat is None:
            return {"llm": "disabled", "reason": "no LLM configured (set GENREC_LLM__BASE_URL); items pass "
                    "through unchanged"}
        used = int(self.r.get(keys.llm_budget(_today())) or 0)
        return {"llm": "enabled", "base_url": self.s.llm.base_url, "models": {t.value: model_for(t, self.s.llm)
                for t in Task}, "budget_used_today": used, "daily_budget": self.s.llm.daily_budget_requests}

    def enrich(self, item: ItemUpsertedData, task: Task = Task.COLD_START_UNDERSTANDING) -> EnrichmentResult:
        model = model_for(task, self.s.llm)
        if self.chat is None:
            return EnrichmentResult(None, model, False, "no LLM configured")
        cache_key = keys.llm_enrichment(content_hash(item))
        cached = self.r.get(cache_key)
        if cached:
            return EnrichmentResult(Enrichment.model_validate_json(cached), model, True)
        if not self._spend_budget():
            return EnrichmentResult(None, model, False, "daily LLM budget exhausted")
        result = self.chat.ask(model, SYSTEM, item_prompt(item), Enrichment)
        self.r.set(cache_key, result.model_dump_json(), ex=CACHE_TTL_S)
        return EnrichmentResult(result, model, False)

    def _spend_budget(self) -> bool:
        key = keys.llm_budget(_today())
        pipe = self.r.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, 2 * 24 * 3600)
        used, _ = pipe.execute()
        return int(used) <= self.s.llm.daily_budget_requests


def _today() -> str:
    return datetime.now(UTC).strftime("%Y%m%d")
