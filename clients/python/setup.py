"""Builds the client with its own copy of the API's message classes, generated from the repository's proto/ (or
the copy an sdist carries) at build time: generated code is build output, never committed."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROTO_FILE = "cakemail/gateway/v1/forwarder.proto"


def _proto_root() -> Path:
    for candidate in (HERE / "proto", HERE.parents[1] / "proto"):
        if (candidate / PROTO_FILE).is_file():
            return candidate
    raise FileNotFoundError(f"{PROTO_FILE} not found next to the client or in the repository")


class BuildWithStubs(build_py):
    def run(self) -> None:
        super().run()
        from importlib.resources import files

        from grpc_tools import protoc  # a build requirement

        well_known = str(files("grpc_tools") / "_proto")

        target = Path(self.build_lib) / "cakemail_gateway" / "_proto"
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as out:
            code = protoc.main(
                [
                    "protoc",
                    f"-I{_proto_root()}",
                    f"-I{well_known}",
                    f"--python_out={out}",
                    f"--pyi_out={out}",
                    PROTO_FILE,
                ]
            )
            if code != 0:
                raise RuntimeError(f"protoc failed ({code})")
            for name in ("forwarder_pb2.py", "forwarder_pb2.pyi"):
                shutil.copy(Path(out) / "cakemail/gateway/v1" / name, target / name)
        (target / "__init__.py").write_text('"""Generated at build time from proto/."""\n')


setup(cmdclass={"build_py": BuildWithStubs})
