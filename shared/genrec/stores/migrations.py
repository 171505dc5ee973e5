"""Versioned PostgreSQL schema migrations, applied in order by `genrec db migrate`.

Append new migrations; never edit one that has shipped. `{dim}` is the embedding dimension.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "extensions and items",
        """
        CREATE EXTENSION IF NOT EXISTS vector;
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE TABLE IF NOT EXISTS items (
            item_id        text PRIMARY KEY,
            title          text NOT NULL DEFAULT '',
            description    text NOT NULL DEFAULT '',
            category_path  text NOT NULL DEFAULT '',
            attributes     jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            embedding      vector({dim}),
            semantic_ids   integer[],
            status         text NOT NULL DEFAULT 'active'
                           CHECK (status IN ('active', 'inactive', 'deleted')),
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS items_category_idx ON items (category_path text_pattern_ops);
        CREATE INDEX IF NOT EXISTS items_status_idx ON items (status);
        CREATE INDEX IF NOT EXISTS items_title_trgm_idx ON items USING gin (title gin_trgm_ops);
        CREATE INDEX IF NOT EXISTS items_embedding_hnsw_idx
            ON items USING hnsw (embedding vector_cosine_ops);
        """,
    ),
    (
        2,
        "users",
        """
        CREATE TABLE IF NOT EXISTS users (
            user_id         text PRIMARY KEY,
            profile         jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            preferences     jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            embedding       vector({dim}),
            created_at      timestamptz NOT NULL DEFAULT now(),
            last_active_at  timestamptz
        );
        """,
    ),
    (
        3,
        "user_events partitioned by month",
        """
        CREATE TABLE IF NOT EXISTS user_events (
            event_id    text NOT NULL,
            source      text NOT NULL,
            user_id     text NOT NULL,
            item_id     text NOT NULL,
            event_type  text NOT NULL,
            value       double precision,
            ts          timestamptz NOT NULL,
            context     jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            received_at timestamptz NOT NULL DEFAULT now(),
            -- the partition key must be part of every unique constraint
            PRIMARY KEY (source, event_id, ts)
        ) PARTITION BY RANGE (ts);
        CREATE INDEX IF NOT EXISTS user_events_user_ts_idx ON user_events (user_id, ts);
        """,
    ),
    (
        4,
        "model_versions",
        """
        CREATE TABLE IF NOT EXISTS model_versions (
            version         text PRIMARY KEY,
            artifact_uri    text NOT NULL,
            serving_uri     text,
            metrics         jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            status          text NOT NULL DEFAULT 'candidate'
                            CHECK (status IN ('candidate', 'canary', 'production', 'retired')),
            traffic_weight  real NOT NULL DEFAULT 0 CHECK (traffic_weight >= 0 AND traffic_weight <= 1),
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now()
        );
        -- at most one production model at a time
        CREATE UNIQUE INDEX IF NOT EXISTS model_versions_one_production
            ON model_versions (status) WHERE status = 'production';
        """,
    ),
    (
        5,
        "updated_at triggers, users.updated_at, model_versions.promoted_at",
        """
        -- now() is the transaction start: every row touched by one statement shares it.
        CREATE OR REPLACE FUNCTION genrec_touch_updated_at() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_at := now();
            RETURN NEW;
        END
        $$;
        ALTER TABLE users ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
        -- the registry's rollback target is the most recently promoted retired version
        ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS promoted_at timestamptz;
        CREATE OR REPLACE TRIGGER items_touch_updated_at BEFORE UPDATE ON items
            FOR EACH ROW EXECUTE FUNCTION genrec_touch_updated_at();
        CREATE OR REPLACE TRIGGER users_touch_updated_at BEFORE UPDATE ON users
            FOR EACH ROW EXECUTE FUNCTION genrec_touch_updated_at();
        CREATE OR REPLACE TRIGGER model_versions_touch_updated_at BEFORE UPDATE ON model_versions
            FOR EACH ROW EXECUTE FUNCTION genrec_touch_updated_at();
        """,
    ),
    (
        6,
        "user_event_ids: each (source, event_id) stored once, whatever its timestamp",
        """
        -- user_events' key has to include its partition key (ts), so an event re-sent with
        -- another timestamp would be stored twice; this table is the once-only guard.
        -- Rows older than the broker's retention can be deleted: no redelivery reaches them.
        CREATE TABLE IF NOT EXISTS user_event_ids (
            source      text NOT NULL,
            event_id    text NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, event_id)
        );
        INSERT INTO user_event_ids (source, event_id, received_at)
            SELECT source, event_id, min(received_at) FROM user_events GROUP BY source, event_id
            ON CONFLICT DO NOTHING;
        """,
    ),
    (
        7,
        "user_events without its own key: user_event_ids is the once-only guard",
        """
        -- The guard decides which events are new in the insert that stores them, so the key on
        -- (source, event_id, ts) only cost every stored event a third B-tree of random keys
        -- (a quarter of the history insert's time).
        ALTER TABLE user_events DROP CONSTRAINT IF EXISTS user_events_pkey;
        """,
    ),
]
