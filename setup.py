"""The build step pyproject.toml cannot state: the gRPC modules generated from genrec's .proto files
(genrec/api/codegen.py), before the package's modules are collected, in editable installs too."""

import runpy
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithProtos(build_py):
    def run(self) -> None:
        runpy.run_path(str(Path(__file__).parent / "shared" / "genrec" / "api" / "codegen.py"))["generate"]()
        super().run()


setup(cmdclass={"build_py": BuildWithProtos})
