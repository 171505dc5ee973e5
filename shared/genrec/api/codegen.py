"""Generate the Python modules of genrec's .proto files (grpcio-tools), next to them.

Run by the build (``setup.py``'s build_py, so every ``pip install`` of genrec, editable or not,
has them) and loadable without genrec installed: it imports nothing of genrec.
"""

from __future__ import annotations

from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # shared/: imports read `genrec.api...`
PROTOS = sorted(Path(__file__).resolve().parent.rglob("*.proto"))


def generate() -> list[Path]:
    """Write ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` beside each .proto; returns the .protos."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
    for proto in PROTOS:
        rel = proto.relative_to(SOURCE_ROOT)
        args = ["protoc", f"-I{SOURCE_ROOT}", f"-I{include}", f"--python_out={SOURCE_ROOT}",
                f"--pyi_out={SOURCE_ROOT}", f"--grpc_python_out={SOURCE_ROOT}", str(rel)]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {rel}")
    return PROTOS


if __name__ == "__main__":
    for p in generate():
        print(f"generated the modules of {p.relative_to(SOURCE_ROOT)}")
