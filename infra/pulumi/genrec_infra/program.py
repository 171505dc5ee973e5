"""The whole platform, in dependency order. `__main__.py` only calls `main()`."""

from __future__ import annotations

import pulumi

from genrec_infra import (
    appconfig,
    clickhouse,
    config,
    eventing,
    functions,
    kafka,
    milvus,
    minio,
    namespaces,
    observability,
    pipelines,
    postgres,
    priorities,
    redis,
    routing,
    secrets,
    serving,
)


def main() -> None:
    cfg = config.load()
    settings = appconfig.production_settings(cfg)  # genrec's own Settings, with in-cluster URLs
    creds = secrets.generate()
    ns = namespaces.create(cfg)

    def in_ns(name: str) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(depends_on=[ns[name]])

    names = cfg.namespaces
    broker = kafka.create(cfg, settings, in_ns(names.kafka))
    pg = postgres.create(cfg, creds, in_ns(names.db))
    cache = redis.create(cfg, creds, in_ns(names.cache))
    objects = minio.create(cfg, settings, creds, in_ns(names.storage))
    vectors = milvus.create(cfg, creds, pulumi.ResourceOptions(depends_on=[ns[names.vector], objects]))
    analytics = clickhouse.create(cfg, creds, in_ns(names.analytics))

    app = appconfig.create(cfg, creds, in_ns(names.app))
    stores = pulumi.ResourceOptions(depends_on=[ns[names.app], broker.cluster, pg, cache, vectors, analytics])
    migrate = pipelines.migration(cfg, app, pulumi.ResourceOptions.merge(stores, pulumi.ResourceOptions(
        depends_on=[app.config_map, app.secret, app.service_account])))
    classes = list(priorities.create().values())
    fns = functions.create(cfg, app, classes,
                           pulumi.ResourceOptions.merge(stores, pulumi.ResourceOptions(depends_on=[migrate])))
    events = eventing.create(cfg, settings, broker.topics, fns.services, in_ns(names.app))
    repository = pipelines.model_repository(cfg, app, pulumi.ResourceOptions.merge(stores, pulumi.ResourceOptions(
        depends_on=[objects, app.config_map, app.secret, app.service_account])))
    model = serving.create(cfg, settings, creds, app, pulumi.ResourceOptions(depends_on=[ns[names.app], repository]))
    route = routing.create(cfg, fns.services["recommend"], in_ns(names.app))
    observability.create(cfg, in_ns(names.app))
    pipelines.create(cfg, app, stores)

    pulumi.export("kafkaBootstrap", settings.kafka.bootstrap_servers)
    pulumi.export("topics", {t.name: t.partitions for t in settings.kafka.topics.values()})
    pulumi.export("kafkaSources", sorted(events.sources))
    pulumi.export("recommendRevision", fns.recommend_revision)
    pulumi.export("recommendHost", cfg.recommend.host)
    pulumi.export("recommendRoute", route.metadata["name"])
    pulumi.export("inferenceService", model.inference_service.metadata["name"])
    pulumi.export("configMap", appconfig.CONFIG_MAP)
