"""A JSON-only chat client over the `openai` package, validated with pydantic before use.

`openai` is imported, and its client built, on the first question: the package takes about a
second to import, which llm-enrichment would otherwise pay on every start from zero.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ValidationError

from genrec.config import LLMSettings
from genrec.stores.resources import Lazy

if TYPE_CHECKING:
    from openai import OpenAI

T = TypeVar("T", bound=BaseModel)


class LLMUnavailable(RuntimeError):
    """The provider could not be reached or is overloaded; try again later."""


class LLMBadOutput(ValueError):
    """The model answered, but not with JSON matching the expected schema."""


def _open(llm: LLMSettings) -> OpenAI:
    from openai import OpenAI

    return OpenAI(
        base_url=llm.base_url,
        api_key=llm.api_key.get_secret_value() if llm.api_key else "not-needed",
        timeout=llm.timeout_s,
        max_retries=llm.max_retries,  # the SDK retries connection errors, 429 and 5xx with backoff
    )


class JsonChat:
    def __init__(self, llm: LLMSettings) -> None:
        if not llm.base_url:
            raise ValueError("no LLM configured (set GENREC_LLM__BASE_URL)")
        self._client = Lazy(lambda: _open(llm))

    @property
    def client(self) -> OpenAI:
        return self._client.get()

    def ask(self, model: str, system: str, user: str, schema: type[T]) -> T:
        client = self.client
        from openai import APIConnectionError, APIStatusError, APITimeoutError, RateLimitError

        try:
            resp = client.chat.completions.create(
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
