#!/bin/sh
# genrec container entry point.
#   function NAME            a Knative function from /app/functions/NAME under func-python (health: /health/*)
#   service MODULE:FACTORY   an ASGI app factory under uvicorn (health: /healthz, /readyz)
#   grpc MODULE              a gRPC API run as `python -m MODULE` (health: the gRPC health service)
#   anything else            the genrec CLI, e.g. `pipeline nightly`
# GENREC_FUNCTIONS_DIR (default /app/functions) and HOST (default 0.0.0.0, as a pod needs) let the
# production-shape test run this same script from a checkout, on loopback.
set -eu

case "${1:-}" in
  function)
    [ $# -eq 2 ] || { echo "usage: function NAME" >&2; exit 64; }
    cd "${GENREC_FUNCTIONS_DIR:-/app/functions}/$2"
    # func-python binds LISTEN_ADDRESS (default [::]:8080,0.0.0.0:8080), the port Knative expects.
    exec python -c 'from func_python.http import serve; from function import new; serve(new)'
    ;;
  service)
    [ $# -eq 2 ] || { echo "usage: service MODULE:FACTORY" >&2; exit 64; }
    # --no-proxy-headers (uvicorn believes them by default): the queue-proxy in front connects from
    # 127.0.0.1, which uvicorn trusts, so a caller's own X-Forwarded-For would become the client address;
    # genrec reads that header itself, only as far as `auth.trusted_proxy_hops` allows (genrec.apps.ratelimit).
    exec uvicorn --factory "$2" --host "${HOST:-0.0.0.0}" --port "${PORT:-8080}" --no-proxy-headers --no-access-log
    ;;
  grpc)
    [ $# -eq 2 ] || { echo "usage: grpc MODULE" >&2; exit 64; }
    # A gRPC API: the module serves h2c on HOST:PORT (default 0.0.0.0:8080), the port Knative routes gRPC to.
    exec python -m "$2"
    ;;
  *)
    exec genrec "$@"
    ;;
esac
