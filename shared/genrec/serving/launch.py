"""Start a real Triton server (the binary inside the nvidia-pytriton wheel) on loopback.

Run with the serving virtualenv's Python (``.venv-serving``, built by ``make install``)::

    .venv-serving/bin/python -m genrec.serving.launch [--artifact DIR|s3://...] [--no-dynamic-batching]

It writes the model repository (``artifact: current`` = follow the production pointer),
lays out Triton's backend folder with the Python stub built for this interpreter, and
``exec``s ``tritonserver`` (so the recorded pid is the server's). HTTP on
``stack.port('model_server')``, gRPC on +1, metrics on +2.

Two environment details make Triton's Python stub work with a pyenv/venv interpreter:
``LD_LIBRARY_PATH`` must start with this Python's own lib dir (else the stub links the
system libpython and fails on ``_thread.RLock``), and ``PATH`` must start with the venv's
bin dir (the stub takes its ``sys.prefix``, hence site-packages, from ``python3`` on PATH).

This module imports no torch; ``serving_python()`` is also used from the main venv.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path

from genrec.config import Settings, SettingsRefused, get_settings
from genrec.serving.repository import write_repository

REPO_ROOT = Path(__file__).resolve().parents[3]
UNBATCHED_TWIN = "genrec_nobatch"


def serving_python() -> Path:
    """The serving virtualenv's interpreter (``GENREC_SERVING_PYTHON`` overrides)."""
    override = os.environ.get("GENREC_SERVING_PYTHON")
    path = Path(override) if override else REPO_ROOT / ".venv-serving" / "bin" / "python"
    if not path.exists():
        raise FileNotFoundError(
            f"the model server's virtualenv is missing ({path}); run `make install` "
            "(it builds .venv-serving with Triton, numpy<2 and torch)"
        )
    return path


def ports(s: Settings) -> dict[str, int]:
    http = s.stack.port("model_server")
    return {"http": http, "grpc": http + 1, "metrics": http + 2}


def _pytriton_dir() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.origin:
        raise FileNotFoundError("nvidia-pytriton is not installed in this environment (use .venv-serving)")
    return Path(spec.origin).parent


def prepare_triton_home(home: Path) -> Path:
    """``home/backends/python`` with the stub matching this interpreter; returns the binary."""
    dist = _pytriton_dir() / "tritonserver"
    backend = home / "backends" / "python"
    backend.mkdir(parents=True, exist_ok=True)
    stub = dist / "python_backend_stubs" / f"{sys.version_info[0]}.{sys.version_info[1]}" / "triton_python_backend_stub"
    for src in (dist / "backends" / "python" / "libtriton_python.so",
                dist / "backends" / "python" / "triton_python_backend_utils.py", stub):
        dst = backend / src.name
        if not dst.exists() or dst.stat().st_size != src.stat().st_size:
            shutil.copy2(src, dst)
    return dist / "bin" / "tritonserver"


# glibc returns every large tensor's memory to the kernel and faults it in again on the next call;
# thresholds above the largest tensor keep it in the heap: 20-28 % less CPU per user measured on the
# serving graph (batch 1 and 32). The price is a heap that never shrinks, right for a server.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "4000000000", "MALLOC_TRIM_THRESHOLD_": "8000000000"}


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    libs = [sysconfig.get_config_var("LIBDIR"), str(_pytriton_dir().parent / "nvidia_pytriton.libs")]
    env["LD_LIBRARY_PATH"] = ":".join([*libs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    for name, value in ALLOCATOR_ENV.items():
        env.setdefault(name, value)
    return env


def server_argv(binary: Path, repo: Path, home: Path, s: Settings, http_port: int | None = None) -> list[str]:
    p = ports(s) if http_port is None else {"http": http_port, "grpc": http_port + 1, "metrics": http_port + 2}
    host = s.stack.host
    return [
        str(binary),
        f"--model-repository={repo}",
        f"--backend-directory={home / 'backends'}",
        f"--http-address={host}", f"--http-port={p['http']}",
        f"--grpc-address={host}", f"--grpc-port={p['grpc']}",
        "--allow-metrics=true", f"--metrics-address={host}", f"--metrics-port={p['metrics']}",
        "--allow-gpu-metrics=false",
        "--exit-on-error=false",  # a broken model must not take the server down
        "--strict-readiness=true",
        "--exit-timeout-secs=5",
        # Unique shared-memory names: several local servers (tests, benchmarks) coexist.
        f"--backend-config=python,shm-region-prefix-name=genrec{p['http']}_",
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Run the genrec model server (Triton) locally.")
    ap.add_argument("--artifact", default="current", help="dir / s3:// URI, or 'current' (follow the pointer)")
    ap.add_argument("--runner", default="auto",
                    help="auto | eager | traced | onnxruntime | torchscript | onnx | tensorrt")
    ap.add_argument("--http-port", type=int, default=None)
    ap.add_argument("--no-dynamic-batching", action="store_true")
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads per instance (0 = all cores)")
    ap.add_argument("--no-feed", action="store_true", help="no Redis: serve the trained catalogue only")
    ap.add_argument("--blocking-load", action="store_true",
                    help="Triton turns ready only once the model is loaded (default: up at once, 503 until loaded)")
    ap.add_argument("--with-unbatched-twin", action="store_true",
                    help=f"also serve {UNBATCHED_TWIN!r}: the same model without dynamic batching (benchmarks)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the repository and Triton files go")
    ap.add_argument("--model-repository", type=Path, default=None,
                    help="serve this repository as it is (as KServe's Triton runtime serves /mnt/models) "
                         "instead of writing one")
    args = ap.parse_args(argv)

    try:
        s = get_settings()
    except SettingsRefused as exc:  # production with a development secret: the message, not a traceback
        raise SystemExit(str(exc)) from None
    work = args.workdir or (s.stack.state_dir.resolve() / "model-server" / (f"port-{args.http_port}"
                                                                             if args.http_port else "default"))
    repo = args.model_repository or work / "repository"
    params = {
        "threads": str(args.threads), "feed": "off" if args.no_feed else "on",
        "load": "blocking" if args.blocking_load else "background",
    }
    common = {"artifact": args.artifact, "runner": args.runner, "instances": args.instances, "top_k": s.model.top_k,
              "extra_parameters": params}
    if args.model_repository is None:
        write_repository(repo, dynamic_batching=not args.no_dynamic_batching, **common)
    if args.with_unbatched_twin:
        write_repository(repo, name=UNBATCHED_TWIN, dynamic_batching=False, **common)
    binary = prepare_triton_home(work / "triton")
    cmd = s.stack.native(server_argv(binary, repo, work / "triton", s, args.http_port))
    print("exec:", " ".join(cmd), flush=True)
    os.execve(cmd[0], cmd, server_env())


if __name__ == "__main__":
    main()
