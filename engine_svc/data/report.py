"""What an import did, per file: rows read / inserted / replaced / skipped, and why rows failed."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO


@dataclass(frozen=True)
class RowError:
    file: str
    line: int  # 1-based physical line in the file (the header is line 1)
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class FileReport:
    file: str
    kind: str
    read: int = 0
    inserted: int = 0
    replaced: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    files: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0
    committed: bool = False
    data_version: int | None = None

    @property
    def errors(self) -> list[RowError]:
        return [e for f in self.files for e in f.errors]

    def totals(self) -> dict[str, int]:
        keys = ("read", "inserted", "replaced", "skipped")
        return {k: sum(getattr(f, k) for f in self.files) for k in keys}

    def print(self, out: TextIO | None = None, max_errors: int = 50) -> None:
        out = sys.stdout if out is None else out  # looked up per call: tests/CLIs may swap stdout
        width = max([len(f.file) for f in self.files] + [4])
        print(f"{'file':<{width}}  {'kind':<16} {'read':>9} {'inserted':>9} {'replaced':>9} {'skipped':>8}", file=out)
        for f in self.files:
            print(
                f"{f.file:<{width}}  {f.kind:<16} {f.read:>9} {f.inserted:>9} {f.replaced:>9} {f.skipped:>8}",
                file=out,
            )
            for note in f.notes:
                print(f"{'':<{width}}  note: {note}", file=out)
        t = self.totals()
        print(
            f"{'TOTAL':<{width}}  {'':<16} {t['read']:>9} {t['inserted']:>9} {t['replaced']:>9} {t['skipped']:>8}",
            file=out,
        )
        errors = self.errors
        for e in errors[:max_errors]:
            print(f"error: {e}", file=out)
        if len(errors) > max_errors:
            print(f"... and {len(errors) - max_errors} more errors", file=out)
        state = "committed" if self.committed else "NOTHING WRITTEN (validation failed)"
        print(f"{state} in {self.seconds:.2f}s; data_version={self.data_version}", file=out)
