"""Generate Python stubs and Envoy's descriptor set from protos/ (``make proto``).

Output:
- ``services/stubs/zquant/...``: *_pb2.py, *_pb2.pyi, *_pb2_grpc.py, importable as the
  ``zquant`` package (installed by ``pip install .``). Never edited, never committed.
- ``deploy/envoy.pb``: descriptor set (with imports and google/rpc/error_details.proto, so the
  gateway can print BadRequest details in JSON).
- ``deploy/openapi.json``: the OpenAPI 3.1 description of the REST paths (protos/openapi.py),
  served by the gateway at GET /api/v1/openapi.json.
- ``deploy/request_types.lua``: the JSON types of every REST request body (protos/request_types.py),
  which the gateway checks bodies against before transcoding (deploy/request_check.lua).

google/* protos come from the googleapis-common-protos wheel and are not generated here:
generating them would shadow the wheel's modules.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
STUB_DIR = ROOT / "services" / "stubs"
DESCRIPTOR = ROOT / "deploy" / "envoy.pb"
OPENAPI = ROOT / "deploy" / "openapi.json"
REQUEST_TYPES = ROOT / "deploy" / "request_types.lua"


def googleapis_include() -> Path:
    import google.api.http_pb2 as http_pb2  # shipped by googleapis-common-protos

    return Path(http_pb2.__file__).resolve().parent.parent.parent


def grpc_tools_include() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).resolve().parent / "_proto"


def proto_files() -> list[str]:
    return sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.glob("zquant/**/*.proto"))


def _protoc(args: list[str]) -> None:
    from grpc_tools import protoc

    argv = ["protoc", f"-I{PROTO_DIR}", f"-I{googleapis_include()}", f"-I{grpc_tools_include()}", *args]
    if protoc.main(argv) != 0:
        raise SystemExit(f"protoc failed: {' '.join(argv)}")


def generate() -> None:
    files = proto_files()
    if STUB_DIR.exists():
        shutil.rmtree(STUB_DIR)
    STUB_DIR.mkdir(parents=True)
    _protoc([f"--python_out={STUB_DIR}", f"--pyi_out={STUB_DIR}", f"--grpc_python_out={STUB_DIR}", *files])
    # Regular packages (not namespace packages) so `pip install .` and editable installs
    # both map `zquant` to this directory.
    for directory in [STUB_DIR, *(p for p in STUB_DIR.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    (STUB_DIR / "__init__.py").unlink()  # services/stubs itself is only a container
    (STUB_DIR / "zquant" / "py.typed").touch()
    DESCRIPTOR.parent.mkdir(parents=True, exist_ok=True)
    _protoc(
        [
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={DESCRIPTOR}",
            *files,
            "google/rpc/error_details.proto",
        ]
    )
    # The OpenAPI generator reads the options through the stubs just generated.
    for path in (str(ROOT), str(STUB_DIR), str(PROTO_DIR)):
        if path not in sys.path:
            sys.path.insert(0, path)
    import openapi  # protos/openapi.py, next to this script
    import request_types  # protos/request_types.py

    openapi.write(DESCRIPTOR, OPENAPI)
    request_types.write(REQUEST_TYPES)


if __name__ == "__main__":
    generate()
    print(f"generated {len(proto_files())} protos into {STUB_DIR.relative_to(ROOT)}, {DESCRIPTOR.relative_to(ROOT)}, "
          f"{OPENAPI.relative_to(ROOT)} and {REQUEST_TYPES.relative_to(ROOT)}")
    sys.exit(0)
