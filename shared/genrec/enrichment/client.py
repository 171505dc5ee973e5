"""A JSON-only chat client over the `openai` package, validated with pydantic before use."""

from __future__ import annotations

import json
from typing import TypeVar

from openai import APIConnectionError, APIStatusError, APITimeoutError, OpenAI, RateLimitError
from pydantic import BaseModel, ValidationError

from genrec.config import LLMSettings

T = TypeVar("T", bound=BaseModel)


class LLMUnavailable(RuntimeError):
    """The provider could not be reached or is overloaded; try again later."""


class LLMBadOutput(ValueError):
    """The model answered, but not with JSON matching the expected schema."""


class JsonChat:
    def __init__(self, llm: LLMSettings) -> None:
        if not llm.base_url:
            raise ValueError("no LLM configured (set GENREC_LLM__BASE_URL)")
        self.client = OpenAI(
            base_url=llm.base_url,
            api_key=llm.api_key.get_secret_value() if llm.api_key else "not-needed",
            timeout=llm.timeout_s,
            max_retries=llm.max_retries,  # the SDK retries connection errors, 429 and 5xx with backoff
        )

    def ask(self, model: str, system: str, user: str, schema: type[T]) -> T:
        try:
            resp = self.client.chat.completions.create(
                model=model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                response_format={"type": "json_object"},
                temperature=0.2,
            )
        except (APIConnectionError, APITimeoutError, RateLimitError) as exc:
            raise LLMUnavailable(str(exc)) from None
        except APIStatusError as exc:
            if exc.status_code >= 500:
                raise LLMUnavailable(f"provider error {exc.status_code}") from None
            raise LLMBadOutput(f"provider refused the request: {exc.status_code} {exc.message}") from None
        content = resp.choices[0].message.content or ""
        try:
            return schema.model_validate(json.loads(content))
        except (ValueError, ValidationError) as exc:
            raise LLMBadOutput(f"model output is not valid {schema.__name__} JSON: {exc}") from None
