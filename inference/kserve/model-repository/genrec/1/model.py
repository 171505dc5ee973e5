"""Triton Python backend entry point of the genrec model (logic: genrec.serving.triton_model)."""

from genrec.serving.triton_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
