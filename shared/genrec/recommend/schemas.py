"""Request and response bodies of the recommend API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from Python 3.12

from genrec.config import MAX_SEQUENCE
from genrec.events.contracts import MAX_SHORT_TEXT, Identifier
from genrec.recommend.context import RequestContext
from genrec.recommend.experiment import Variant

ServedBy = Literal["cache", "model", "vector", "popularity", "session"]
FeedbackType = Literal["like", "skip", "click", "add_to_cart", "purchase", "view"]
# Every collection in a request is bounded (over: a 422 naming the field); ``context``'s other keys as FreeForm.
MAX_FILTER_ATTRIBUTES = 32
AttributeName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _short(value: str | int | float | bool) -> str | int | float | bool:
    if isinstance(value, str) and len(value) > MAX_SHORT_TEXT:
        raise ValueError(f"longer than {MAX_SHORT_TEXT} characters")
    return value


# Checked after the union so that an error names the attribute, not a member of the union.
AttributeValue = Annotated[str | int | float | bool, AfterValidator(_short)]


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: str | None = Field(
        default=None, max_length=512, description="A category path ('Beauty|Skin Care'): it or any sub-category."
    )
    attributes: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict, max_length=MAX_FILTER_ATTRIBUTES,
        description="Every listed attribute must equal the item's.",
    )


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: Identifier
    count: int = Field(default=10, ge=1, le=50)
    context: RequestContext = Field(default_factory=RequestContext,
                                    description="The page asking: surface, device, locale, hour, page_category "
                                                "(re-weights the list; genrec.recommend.context)")
    exclude: list[Identifier] = Field(default_factory=list, max_length=1000)
    filters: Filters = Field(default_factory=Filters)
    page_token: str | None = Field(default=None, max_length=200)


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Identifier] = Field(min_length=1, max_length=MAX_SEQUENCE)
    count: int = Field(default=10, ge=1, le=50)
    filters: Filters = Field(default_factory=Filters)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: Identifier
    item_id: Identifier
    feedback: FeedbackType
    request_id: str | None = Field(default=None, max_length=64)


# A dict, not a model: a list's items are built from rows the service already typed, and a model
# per item (model_construct, 50 per list) cost more CPU than serialising the whole answer.
class RecommendedItem(TypedDict):
    """One item of a recommendation list."""

    item_id: str
    score: float
    semantic_ids: list[int] | None
    title: str
    description: str
    category_path: str
    image_url: str
    reason: str
    is_new: bool


class RecommendationList(BaseModel):
    request_id: str
    user_id: str | None = None
    served_by: ServedBy
    algorithm_version: str
    variant: Variant = Field(default="production", description="The live A/B arm the list was served for")
    items: list[RecommendedItem]
    next_page_token: str | None = None
    debug: dict[str, Any] = Field(default_factory=dict)
