"""Other systems get the generated client stubs with `pip install .` (stubs are never committed)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_contains_generated_stubs_and_installs_into_a_clean_target(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("zquant_platform-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for stub in ("zquant/auth/v1/auth_pb2.py", "zquant/auth/v1/auth_pb2_grpc.py", "zquant/auth/v1/auth_pb2.pyi",
                 "zquant/backtest/v1/task_pb2_grpc.py", "zquant/backtest/v1/strategy_pb2_grpc.py",
                 "zquant/engine/v1/engine_pb2_grpc.py", "zquant/py.typed"):
        assert stub in names, stub
    assert not any(n.startswith("services/stubs") for n in names)
    for service in ("auth_svc", "task_svc", "engine_svc"):  # an installed service (an image) migrates
        assert f"{service}/migrations/env.py" in names and f"{service}/migrations/script.py.mako" in names
        assert any(n.startswith(f"{service}/migrations/versions/0001_") for n in names), service

    # Installed alone into an empty target, the stubs import and describe the REST mapping.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=120)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import zquant.backtest.v1.task_pb2_grpc as g, zquant.backtest.v1.task_pb2 as m;"
        "assert m.__file__.startswith(sys.argv[1]), m.__file__;"
        "print(g.TaskServiceStub.__name__, m.Task.Status.Name(3))"
    )
    out = subprocess.run([sys.executable, "-I", "-c", probe, str(target)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["TaskServiceStub", "COMPLETED"]
