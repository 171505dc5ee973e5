"""Which model serves which task (the original design's router): quality where understanding
matters, the cheap model for bulk extraction and one-line reasons."""

from __future__ import annotations

from enum import StrEnum

from genrec.config import LLMSettings


class Task(StrEnum):
    COLD_START_UNDERSTANDING = "cold_start_understanding"  # a new item nobody has interacted with
    BATCH_EXTRACTION = "batch_extraction"  # re-enriching a catalogue in bulk
    RECOMMENDATION_REASON = "recommendation_reason"  # one line shown to a shopper


def model_for(task: Task, llm: LLMSettings) -> str:
    return llm.quality_model if task is Task.COLD_START_UNDERSTANDING else llm.cheap_model
