"""Envoy routes that serve the built web console (``web/dist/console``) from the gateway.

Envoy serves each file with a ``direct_response`` whose body is the file itself (read once at
start-up), so the console needs no server process of its own and shares the API's origin. The
asset names carry a content hash, so they are cached for a year (``immutable``); ``index.html``
names the current hashes and is ``no-cache``. Every console response carries the security
headers below.

Scripts and style sheets are served precompressed: the build writes ``<file>.gz`` beside each
(web/vite.config.ts), and a client whose ``accept-encoding`` admits gzip gets that file with
``content-encoding: gzip`` from a route listed before the plain one. Envoy's compressor filter,
which would otherwise gzip the chart chunk again for every cold page load (tens of milliseconds
of CPU on the page's critical path), is off on those routes.

The routes are generated because the hashed names change with every build: rendering the
gateway config replaces the block between ``# render-block: console_routes`` and
``# end-block: console_routes`` in deploy/envoy.yaml with :func:`console_routes_block`. Without a
build the committed block stays: ``/console/`` answers 404 saying how to build it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSOLE_DIST = ROOT / "web" / "dist" / "console"
PREFIX = "/console/"

# No inline or evaluated script; styles may be inline (ECharts' SVG and CodeMirror set style
# attributes and elements). API calls go to the same origin; nothing else is fetched.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}

# Envoy reads each direct_response file whole into memory; the largest chunk is well below this.
MAX_FILE_BYTES = 4 * 1024 * 1024

# The build's precompressed variant of a file, and when a client may have it: gzip listed in
# accept-encoding without q=0 (RFC 9110 §12.5.3; "gzip;q=0" means "never gzip").
GZIP_SUFFIX = ".gz"
# Envoy matches the whole header value.
ACCEPTS_GZIP = r"(?i)(.*[,\s])?gzip\s*(;\s*q=(1(\.0*)?|0?\.\d*[1-9]\d*)\s*)?(,.*)?"

# The transcoder would answer every non-API path "could not resolve to a method": console routes
# switch it off.
_NO_TRANSCODER = {
    "envoy.filters.http.grpc_json_transcoder": {
        "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True,
    },
}
# The variant was compressed at build time: the compressor filter must leave it alone.
_PRECOMPRESSED = {
    **_NO_TRANSCODER,
    "envoy.filters.http.compressor": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute",
        "disabled": True,
    },
}

_ROOT_REDIRECT: dict[str, object] = {
    "match": {"path": "/"}, "redirect": {"path_redirect": PREFIX}, "typed_per_filter_config": _NO_TRANSCODER,
}


class ConsoleBuildError(ValueError):
    """The build output cannot be served (unknown file type, file too large, no index)."""


def content_type(path: Path) -> str:
    try:
        return CONTENT_TYPES[path.suffix.lower()]
    except KeyError:
        raise ConsoleBuildError(f"{path}: no content type for {path.suffix!r} files") from None


def _headers(ctype: str, cache: str, extra: dict[str, str] | None = None) -> list[dict[str, object]]:
    values = {"content-type": ctype, "cache-control": cache, **SECURITY_HEADERS, **(extra or {})}
    return [{"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for k, v in values.items()]


def _file_route(match: dict[str, object], file: Path, cache: str) -> dict[str, object]:
    return {
        "match": match,
        "direct_response": {"status": 200, "body": {"filename": str(file)}},
        "response_headers_to_add": _headers(content_type(file), cache),
        "typed_per_filter_config": _NO_TRANSCODER,
    }


def _precompressed_route(path: str, file: Path, gz: Path, cache: str) -> dict[str, object]:
    """``file``'s URL answered with the bytes of ``gz`` to a client that accepts gzip."""
    accepts = {"name": "accept-encoding", "string_match": {"safe_regex": {"regex": ACCEPTS_GZIP}}}
    return {
        "match": {"path": path, "headers": [accepts]},
        "direct_response": {"status": 200, "body": {"filename": str(gz)}},
        "response_headers_to_add": _headers(content_type(file), cache,
                                            {"content-encoding": "gzip", "vary": "accept-encoding"}),
        "typed_per_filter_config": _PRECOMPRESSED,
    }


def console_routes(dist: Path = CONSOLE_DIST) -> list[dict[str, object]]:
    """One route per built file, the index at /console and /console/, / redirecting there, and
    a 404 for any other /console/ path (a stale link must not fall through to the API)."""
    dist = dist.resolve()
    index = dist / "index.html"
    if not index.is_file():
        raise ConsoleBuildError(f"{index} is missing: run `make web`")
    routes: list[dict[str, object]] = [
        _ROOT_REDIRECT,
        _file_route({"path": "/console"}, index, CACHE_REVALIDATE),
        _file_route({"path": PREFIX}, index, CACHE_REVALIDATE),
    ]
    files = sorted(p for p in dist.rglob("*") if p.is_file())
    for file in files:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise ConsoleBuildError(f"{file} is larger than {MAX_FILE_BYTES} bytes")
        if file.name.endswith(GZIP_SUFFIX) and file.with_name(file.name.removesuffix(GZIP_SUFFIX)).is_file():
            continue  # a variant, served at its original's URL below
        rel = file.relative_to(dist).as_posix()
        # Only hashed build assets are immutable; anything else (index, public files) revalidates.
        cache = CACHE_IMMUTABLE if rel.startswith("assets/") else CACHE_REVALIDATE
        gz = file.with_name(file.name + GZIP_SUFFIX)
        if gz.is_file():
            routes.append(_precompressed_route(PREFIX + rel, file, gz, cache))
        # The plain file: Envoy's compressor (on here) adds `vary: accept-encoding` itself.
        routes.append(_file_route({"path": PREFIX + rel}, file, cache))
    routes.append(_not_found("console file not found"))
    return routes


def _not_found(message: str) -> dict[str, object]:
    return {
        "match": {"prefix": PREFIX},
        "direct_response": {"status": 404, "body": {"inline_string": message}},
        "response_headers_to_add": _headers("text/plain; charset=utf-8", CACHE_REVALIDATE),
        "typed_per_filter_config": _NO_TRANSCODER,
    }


def _lines(routes: list[dict[str, object]], indent: str) -> Iterator[str]:
    # JSON is YAML: one flow mapping per route keeps the rendered file short and exact.
    for route in routes:
        yield f"{indent}- {json.dumps(route, ensure_ascii=False, separators=(', ', ': '))}\n"


def console_routes_block(indent: str, dist: Path = CONSOLE_DIST) -> str:
    """The YAML list items that replace the ``console_routes`` block, at ``indent``."""
    return "".join(_lines(console_routes(dist), indent))


NOT_BUILT_MESSAGE = "console not built: run `make web` (npm ci and the Vite build in web/)"


def not_built_block(indent: str) -> str:
    """The committed block: no build, so every /console/ path explains how to get one."""
    return "".join(_lines([_ROOT_REDIRECT, _not_found(NOT_BUILT_MESSAGE)], indent))
