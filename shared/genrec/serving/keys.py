"""Redis keys of the serving layer (kept apart from ``genrec.stores.redis_keys`` on purpose:
the model server's slim environment imports only this package).

=====================================  ======  ==============================================
key                                    type    content
=====================================  ======  ==============================================
``serving:current``                    string  URI (dir or s3://) of the production artifact
``serving:artifacts``                  hash    artifact version -> URI (for client look-ups)
``serving:canary``                     hash    the canary: ``uri``, ``version``, ``weight``
                                               (share of users, 0..1); absent: no canary
``serving:{v:VERSION}:codes``          list    code feed: JSON ``{"item_id", "codes"}``; the
                                               item at position p has dense index
                                               ``n_base_items + p``
``serving:{v:VERSION}:ids``            hash    fed item id -> dense index (idempotent appends)
``serving:{v:VERSION}:keys``           hash    packed code key -> fed item id (uniqueness)
=====================================  ======  ==============================================

The three per-version keys share a hash tag, so the append script runs on one Cluster slot.
"""

from __future__ import annotations

CURRENT = "serving:current"
ARTIFACTS = "serving:artifacts"
CANARY = "serving:canary"


def feed(version: str) -> str:
    return f"serving:{{v:{version}}}:codes"


def feed_ids(version: str) -> str:
    return f"serving:{{v:{version}}}:ids"


def feed_keys(version: str) -> str:
    return f"serving:{{v:{version}}}:keys"
