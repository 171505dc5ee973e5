"""Every Redis key genrec uses, with its type, TTL and content, in one place.

Redis Cluster: a ``{...}`` hash tag decides a key's slot. Keys that one pipeline or script
touches together share a tag: ``{u:USER}`` for a user's keys, ``{c:CATEGORY}`` for one
popularity board and its epoch. Ids are used verbatim; a ``}`` inside an id only shortens
the tag, the same way for all of that user's keys, so they still share a slot.

===========================  ======  =============================  =====================================
key                          type    TTL                            content
===========================  ======  =============================  =====================================
``rec:{u:USER}``             string  redis.recommendation_ttl_s     cached recommendations (JSON); deleted
                                                                    on every new interaction of the user
``seq:{u:USER}``             list    USER_STATE_TTL_S, refreshed    recent item ids, newest last, capped
                                     on every write                 at redis.recent_sequence_cap
``feat:{u:USER}``            hash    USER_STATE_TTL_S, refreshed    user features (event counters, last
                                     on every write                 item and time)
``pop:{c:CATEGORY}``         zset    none (pruned at each rebase)   item -> popularity scaled by
                                                                    2^((t - epoch) / half_life); CATEGORY
                                                                    "" is the global board
``pop:{c:CATEGORY}:epoch``   string  none                           that board's epoch (unix seconds)
``idem:{u:USER}:HASH``       string  redis.idempotency_ttl_s        feature-update's claim of one event for
                                                                    that user (same slot as the user's keys)
``page:REQUEST_ID``          string  recommend.pages.PAGE_TTL_S     one served ranked list (JSON), so that
                                                                    its pages never repeat an item
``ce:seen:HASH``             string  redis.idempotency_ttl_s        event-capture's (source, id) dedup mark
``llm:enrich:HASH``          string  enrichment.enricher.CACHE_TTL  LLM enrichment of one item content (JSON)
``llm:budget:YYYYMMDD``      string  2 days                         LLM requests spent that day (UTC)
===========================  ======  =============================  =====================================
"""

from __future__ import annotations

import hashlib

# Inactive users' state expires so memory tracks active users; any write refreshes it.
USER_STATE_TTL_S = 90 * 24 * 3600
GLOBAL_CATEGORY = ""


def recommendations(user_id: str) -> str:
    return f"rec:{{u:{user_id}}}"


def recent_items(user_id: str) -> str:
    return f"seq:{{u:{user_id}}}"


def user_features(user_id: str) -> str:
    return f"feat:{{u:{user_id}}}"


def popularity(category: str = GLOBAL_CATEGORY) -> str:
    return f"pop:{{c:{category}}}"


def popularity_epoch(category: str = GLOBAL_CATEGORY) -> str:
    return f"pop:{{c:{category}}}:epoch"


def ranked_page(request_id: str) -> str:
    return f"page:{request_id}"


def llm_enrichment(content_hash: str) -> str:
    return f"llm:enrich:{content_hash}"


def llm_budget(day: str) -> str:
    return f"llm:budget:{day}"


def user_claim(user_id: str, source: str, event_id: str) -> str:
    """A claim in the user's slot, so the claim and the user's update are one atomic script."""
    digest = hashlib.blake2b(f"{source}\0{event_id}".encode(), digest_size=12).hexdigest()
    return f"idem:{{u:{user_id}}}:{digest}"
