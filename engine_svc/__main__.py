"""Command line of the engine: ``run`` a backtest locally, or ``serve`` the gRPC service.

    python -m engine_svc serve        # the engine service (engine_svc/serve.py, env-configured)
    python -m engine_svc migrate      # apply the market-data migrations to ZQ_ENGINE_DATABASE_URL, exit
    python -m engine_svc run STRATEGY.py --start 2012-01-04 --end 2016-12-30 \\
        --symbols 600036.SH,000002.SZ [--benchmark 000001.SH] [--capital 1000000] \\
        [--params '{"window": 20}'] [--config CONFIG.json] [--json RESULT.json] [--html REPORT.html]
    python -m engine_svc sweep STRATEGY.py --start … --end … --symbols … \\
        --param short_window=3:12:1 --param long_window=20:60:5 --constraint 'short_window < long_window' \\
        --objective sharpe_ratio [--method grid|random|tpe --trials N --seed S] [--json SWEEP.json]
                                      # a parameter sweep in-process (engine_svc/sweep_cli.py)

The database is ``ZQ_ENGINE_DATABASE_URL`` (default: ``engine.db`` in ``ZQ_DATA_DIR``).
``--config`` is a JSON object of BacktestConfig fields; command-line flags override it.
Exit codes: 0 ok, 1 the strategy failed (its traceback is printed), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_STRATEGY = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: reported as one line on stderr with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + message
        raise UsageError(message)


def add_config_arguments(parser: argparse.ArgumentParser, *, params_help: str) -> None:
    """The strategy file and the BacktestConfig flags that `build_config` reads (run and sweep)."""
    parser.add_argument("strategy", help="strategy source file defining class Strategy(BaseStrategy)")
    parser.add_argument("--start", help="first day, YYYY-MM-DD")
    parser.add_argument("--end", help="last day, YYYY-MM-DD")
    parser.add_argument("--symbols", help="comma-separated Tushare codes, e.g. 600036.SH,000002.SZ")
    parser.add_argument("--benchmark", help="index symbol, e.g. 000300.SH")
    parser.add_argument("--capital", type=float, help="initial capital (default 1000000)")
    parser.add_argument("--adjust-type", choices=("qfq", "hfq", "none"), help="price view of the strategy")
    parser.add_argument("--params", help=params_help)
    parser.add_argument("--config", help="JSON file with BacktestConfig fields (flags override it)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m engine_svc", description="zquant backtest engine")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a backtest and print its metrics")
    add_config_arguments(run, params_help="JSON object passed to the strategy as self.params")
    run.add_argument("--json", dest="json_out", help="write the full result (with metrics) here")
    run.add_argument("--html", dest="html_out",
                     help="write the self-contained HTML report here (the same report the API serves)")
    run.add_argument("--lang", choices=("en", "zh-CN"), default="en", help="language of the HTML report")
    run.add_argument("--database-url", help="override ZQ_ENGINE_DATABASE_URL")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    from engine_svc.sweep_cli import add_parser as add_sweep_parser

    add_sweep_parser(sub, add_config_arguments)
    # ---- `serve`: the gRPC service (engine_svc/serve.py, configured by environment only) ----
    sub.add_parser("serve", help="run the engine gRPC service (ZQ_ENGINE_ADDR, see engine_svc/serve.py)")
    sub.add_parser("migrate", help="apply the market-data migrations to ZQ_ENGINE_DATABASE_URL and exit "
                                   "(a deployment's migration Job; the service also migrates at start)")
    return parser


def _read_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc}") from None


def build_config(args: argparse.Namespace) -> Any:
    from engine_svc.engine.config import BacktestConfig, ConfigError

    fields: dict[str, Any] = {}
    if args.config:
        try:
            text = Path(args.config).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read config {args.config}: {exc.strerror}") from None
        loaded = _read_json(text, f"config {args.config}")
        if not isinstance(loaded, dict):
            raise UsageError(f"config {args.config} must be a JSON object")
        fields.update(loaded)
    overrides = {
        "start_date": args.start, "end_date": args.end, "benchmark": args.benchmark,
        "initial_capital": args.capital, "adjust_type": args.adjust_type,
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    if args.symbols:
        fields["symbols"] = [s.strip() for s in args.symbols.split(",") if s.strip()]
    if args.params is not None:
        params = _read_json(args.params, "--params")
        if not isinstance(params, dict):
            raise UsageError("--params must be a JSON object")
        fields["params"] = params
    for name in ("start_date", "end_date", "symbols"):
        if not fields.get(name):
            flag = {"start_date": "--start", "end_date": "--end", "symbols": "--symbols"}[name]
            raise UsageError(f"{flag} is required (or {name} in --config)")
    try:
        return BacktestConfig.from_dict(fields)
    except ConfigError as exc:
        raise UsageError(f"config {exc}") from None
    except TypeError as exc:
        raise UsageError(f"config: {exc}") from None


def load_market(config: Any, database_url: str | None) -> Any:
    from engine_svc.data import loader
    from services.config import database_url as default_url

    url = database_url or default_url("engine")
    try:
        return loader.load_panel(
            url, list(config.symbols), config.start_date, config.end_date,
            benchmark=config.benchmark, use_daily_basic=config.use_daily_basic,
        )
    except (LookupError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:  # e.g. sqlalchemy OperationalError: missing/unreadable database
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot load market data from {url}: {first}") from None


def compute_metrics_if_available(result: dict[str, Any], config: Any) -> dict[str, Any] | None:
    try:
        from engine_svc.metrics import compute_metrics
    except ImportError:
        return None
    return compute_metrics(result, annualization=config.annualization, risk_free_rate=config.risk_free_rate)


def format_table(result: dict[str, Any], metrics: dict[str, Any] | None) -> str:
    last = result["daily"][-1]
    rows: list[tuple[str, str]] = [
        ("period", f"{result['start_date']} .. {result['end_date']} ({len(result['daily'])} days)"),
        ("symbols", str(len(result["symbols"]))),
        ("initial capital", f"{result['initial_capital']:,.2f}"),
        ("final value", f"{last['total_value']:,.2f}"),
        ("orders / fills", f"{len(result['orders'])} / {len(result['trades'])}"),
        ("adjustment", f"{result['adjust_type']} (applied: {result['adjustment_applied']})"),
    ]
    for key, value in (metrics or {}).items():
        if isinstance(value, float):
            text = f"{value:.6f}"
        elif value is None:
            text = "-"
        elif isinstance(value, (int, str)):
            text = str(value)
        else:
            continue  # nested structures belong in the JSON, not the table
        rows.append((key, text))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def cmd_run(args: argparse.Namespace) -> int:
    from engine_svc.engine.errors import StrategyError
    from engine_svc.engine.runner import run_backtest

    try:
        code = Path(args.strategy).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read strategy {args.strategy}: {exc}") from None
    config = build_config(args)
    panel = load_market(config, args.database_url)

    from tqdm import tqdm

    with tqdm(total=1000, file=sys.stderr, disable=args.quiet, leave=False,
              bar_format="{percentage:3.0f}%|{bar}| {desc} [{elapsed}<{remaining}]") as bar:
        def progress(fraction: float, day: str, equity: float) -> None:
            bar.n = round(fraction * 1000)
            bar.set_description_str(f"{day} equity {equity:,.0f}", refresh=False)
            bar.refresh()

        try:
            result = run_backtest(panel, code, config, progress)
        except StrategyError as exc:
            bar.close()
            print(exc.text, file=sys.stderr)
            return EXIT_STRATEGY
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    metrics = compute_metrics_if_available(result, config)
    print(format_table(result, metrics))
    if args.json_out:
        out = dict(result)
        out["metrics"] = metrics
        try:
            Path(args.json_out).write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.json_out}: {exc.strerror}") from None
    if args.html_out:
        write_html_report(Path(args.html_out), Path(args.strategy).name, code, config, result, metrics, panel,
                          args.lang)
    return EXIT_OK


def write_html_report(path: Path, name: str, code: str, config: Any, result: dict[str, Any],
                      metrics: dict[str, Any] | None, panel: Any, lang: str) -> None:
    """The report of backtest_report (the one GET …/tasks/{id}/report serves), from this run."""
    from dataclasses import asdict

    from backtest_report.html import Bar, ReportAssetsMissing, ReportInput, candle_symbols, render_report
    from engine_svc.data.bars import panel_bars
    from engine_svc.metrics import round_trips
    from engine_svc.service.convert import result_to_proto

    message = result_to_proto({
        **result, "metrics": metrics or {}, "logs": "\n".join(result.get("logs") or ()),
        "round_trips": round_trips(result.get("trades") or [], result.get("ex_rights") or []),
    })
    bars = {s: [Bar(b["date"], b["open"], b["high"], b["low"], b["close"]) for b in panel_bars(panel, s)]
            for s in candle_symbols(message) if s in panel.symbols}
    settings = asdict(config) if hasattr(config, "__dataclass_fields__") else dict(vars(config))
    params = settings.pop("params", None) or {}
    try:
        page = render_report(message, ReportInput(
            title=f"{name} {result['start_date']} – {result['end_date']}", strategy_code=code, params=params,
            config=settings, bars=bars, annualization=config.annualization, risk_free_rate=config.risk_free_rate,
            lang=lang))
    except ReportAssetsMissing as exc:
        raise UsageError(str(exc)) from None
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def cmd_migrate() -> int:
    from services import migrations
    from services.config import ServerSettings
    from services.logs import configure_logging

    settings = ServerSettings.from_env("engine")
    configure_logging("engine", settings.log_level)
    return migrations.migrate_command("engine", settings.database_url)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "sweep":
            from engine_svc.sweep_cli import cmd_sweep

            return cmd_sweep(args, build_config, load_market, UsageError)
        if args.command == "serve":  # the gRPC service; imported here so `run` stays light
            from engine_svc.serve import main as serve_main

            return serve_main()
        if args.command == "migrate":
            return cmd_migrate()
        raise UsageError(f"unknown command {args.command}")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
