"""Build hook: generate the gRPC stubs before setuptools collects packages.

Everything declarative lives in pyproject.toml. This file exists only because the stubs are
generated (never committed), so `pip install .` must produce them at build time.
"""

import runpy
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
runpy.run_path(str(ROOT / "protos" / "generate.py"))["generate"]()

setup(
    packages=[
        *find_packages(include=["services*", "auth_svc*", "task_svc*", "engine_svc*", "backtest_report*", "sweeplib*"],
                       exclude=["services.stubs*"]),
        *("zquant" + p[len("zquant"):] for p in find_packages("services/stubs", include=["zquant*"])),
    ],
    package_dir={"zquant": "services/stubs/zquant"},
)
