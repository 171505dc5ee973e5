"""Asking a gRPC server's standard health service (grpc.health.v1), as Kubernetes' grpc probe does."""

from __future__ import annotations

from urllib.parse import urlsplit


def address_of(url: str) -> str:
    """``host:port`` of a workload's URL (``http://name.ns.svc.cluster.local`` → port 80)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def serving(address: str, service: str = "", timeout_s: float = 2.0) -> bool:
    """Whether ``address`` (host:port) answers SERVING for ``service`` ("": the server as a whole)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                              timeout=timeout_s)
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING
