"""PostgreSQL with pgvector through CloudNativePG: one Cluster CR and its owner's credentials."""

from __future__ import annotations

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

from genrec.config import PostgresSettings
from genrec_infra import secrets
from genrec_infra.config import StackConfig
from genrec_infra.k8s import custom

OWNER_SECRET = "genrec-pg-owner"


def create(cfg: StackConfig, creds: secrets.Credentials, opts: pulumi.ResourceOptions) -> CustomResource:
    pg, ns = cfg.postgres, cfg.namespaces.db
    owner = secrets.secret(OWNER_SECRET, ns, {"username": pg.owner, "password": creds.postgres},
                           type_="kubernetes.io/basic-auth", opts=opts)
    storage: dict = {"size": pg.storage}
    wal: dict = {"size": pg.wal_storage}
    if cfg.storage_class:
        storage["storageClass"] = wal["storageClass"] = cfg.storage_class
    spec = {
        "instances": pg.instances,
        "imageName": pg.image,
        "primaryUpdateStrategy": "unsupervised",
        "storage": storage,
        "walStorage": wal,  # WAL on its own volume: a full data disk cannot stop commits
        "resources": pg.resources.to_k8s(),
        "affinity": {"enablePodAntiAffinity": True, "topologyKey": "kubernetes.io/hostname"},
        "postgresql": {"parameters": {
            **PostgresSettings().server_parameters,  # the event write load's (genrec.config)
            "max_connections": str(pg.max_connections),
            "shared_buffers": pg.shared_buffers,
        }},
        "bootstrap": {"initdb": {
            "database": pg.database,
            "owner": pg.owner,
            "secret": {"name": OWNER_SECRET},
            # Runs as superuser in the app database: genrec's migrations then only need ownership.
            "postInitApplicationSQL": ["CREATE EXTENSION IF NOT EXISTS vector"],
        }},
    }
    if pg.instances > 1:
        spec["minSyncReplicas"] = 1  # an acknowledged commit survives losing the primary
        spec["maxSyncReplicas"] = 1
    return custom("postgres-cluster", "postgresql.cnpg.io/v1", "Cluster",
                  {"name": pg.cluster_name, "namespace": ns}, spec,
                  pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[owner])))
