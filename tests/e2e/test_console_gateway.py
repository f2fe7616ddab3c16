"""Envoy serves the console's files at /console/ (direct_response from files), same origin as
the API: content types, caching (hashed assets immutable, index revalidated), security headers,
gzip (the build's precompressed variant when there is one, else compressed by Envoy), and the
API's JSON errors untouched. Uses a small fake build, not the real one."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import pytest

from services import console_routes

pytestmark = pytest.mark.envoy

INDEX = b"<!doctype html><html><head><script type=module src=/console/assets/app-1a2b3c.js></script></head></html>"
SCRIPT = b"console.log('zquant');\n" * 400  # > 1 KiB, so it is worth compressing
# The build's variant (web/vite.config.ts): not what Envoy would produce, so a test can tell them apart.
SCRIPT_GZ = gzip.compress(SCRIPT, compresslevel=1, mtime=0)
LAZY = b"export const zquant = 1;\n" * 400  # a file the build left without a variant


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dist")
    (root / "assets").mkdir()
    (root / "index.html").write_bytes(INDEX)
    (root / "assets" / "app-1a2b3c.js").write_bytes(SCRIPT)
    (root / "assets" / "app-1a2b3c.js.gz").write_bytes(SCRIPT_GZ)
    (root / "assets" / "lazy-7a8b9c.js").write_bytes(LAZY)
    (root / "assets" / "app-4d5e6f.css").write_bytes(b"body{margin:0}")
    return root


@pytest.fixture(scope="module")
def gateway(module_gateway_factory, dist: Path):
    return module_gateway_factory(console_dist=dist)


def _security(resp: httpx.Response) -> None:
    csp = resp.headers["content-security-policy"]
    assert "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    assert resp.headers["x-content-type-options"] == "nosniff"


def test_index_is_html_revalidated_with_security_headers(gateway) -> None:
    for path in ("/console/", "/console"):
        resp = httpx.get(gateway.url + path)
        assert resp.status_code == 200
        assert resp.content == INDEX  # the body is the file, not rewritten as a JSON error
        assert resp.headers["content-type"] == "text/html; charset=utf-8"
        assert resp.headers["cache-control"] == "no-cache"
        _security(resp)


def test_hashed_assets_are_immutable_with_their_content_type(gateway) -> None:
    js = httpx.get(gateway.url + "/console/assets/app-1a2b3c.js", headers={"accept-encoding": "identity"})
    assert js.status_code == 200 and js.content == SCRIPT
    assert js.headers["content-type"] == "application/javascript; charset=utf-8"
    assert js.headers["cache-control"] == "public, max-age=31536000, immutable"
    _security(js)
    css = httpx.get(gateway.url + "/console/assets/app-4d5e6f.css")
    assert css.headers["content-type"] == "text/css; charset=utf-8"


def _raw(url: str, accept_encoding: str) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent (not decoded)."""
    with httpx.Client() as client:
        resp = client.send(client.build_request("GET", url, headers={"accept-encoding": accept_encoding}), stream=True)
        return resp, b"".join(resp.iter_raw())


def test_precompressed_variant_when_gzip_is_accepted(gateway) -> None:
    url = gateway.url + "/console/assets/app-1a2b3c.js"
    for accept in ("gzip", "gzip, deflate, br, zstd", "deflate, gzip;q=0.5"):
        resp, body = _raw(url, accept)
        assert resp.status_code == 200
        assert resp.headers["content-encoding"] == "gzip"
        assert body == SCRIPT_GZ, accept  # the build's file as it is: not decoded, not compressed again
        assert resp.headers["content-type"] == "application/javascript; charset=utf-8"
        assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert resp.headers["vary"].lower() == "accept-encoding"
        _security(resp)
    # Refusing gzip (q=0) or not asking for it: the plain file, same headers otherwise.
    for accept in ("identity", "gzip;q=0", "deflate, gzip;q=0.0", "x-gzip"):
        resp, body = _raw(url, accept)
        assert "content-encoding" not in resp.headers, accept
        assert body == SCRIPT
        assert resp.headers["vary"].lower() == "accept-encoding"
        assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
        _security(resp)


def test_gzip_by_envoy_when_there_is_no_variant(gateway) -> None:
    resp, body = _raw(gateway.url + "/console/assets/lazy-7a8b9c.js", "gzip")
    assert resp.headers["content-encoding"] == "gzip"
    assert len(body) < len(LAZY) / 10
    assert gzip.decompress(body) == LAZY


def test_unknown_console_path_is_404_and_root_redirects(gateway) -> None:
    missing = httpx.get(gateway.url + "/console/assets/gone-000000.js")
    assert missing.status_code == 404
    assert missing.text == "console file not found"
    root = httpx.get(gateway.url + "/", follow_redirects=False)
    assert root.status_code == 301
    assert root.headers["location"].endswith("/console/")


def test_api_errors_keep_their_json_shape(gateway) -> None:
    resp = httpx.get(gateway.url + "/api/v1/no/such/path")
    assert resp.status_code == 404
    assert resp.json()["code"] == 5


def test_route_generation_rules(tmp_path: Path, dist: Path) -> None:
    routes = console_routes.console_routes(dist)
    paths = [r["match"].get("path") or r["match"].get("prefix") for r in routes]
    # The precompressed variant first (only for clients accepting gzip), then the plain file; the
    # .gz file has no URL of its own.
    assert paths == ["/", "/console", "/console/", "/console/assets/app-1a2b3c.js", "/console/assets/app-1a2b3c.js",
                     "/console/assets/app-4d5e6f.css", "/console/assets/lazy-7a8b9c.js", "/console/index.html",
                     "/console/"]
    assert [h["name"] for h in routes[3]["match"]["headers"]] == ["accept-encoding"]
    assert routes[3]["direct_response"]["body"]["filename"].endswith("app-1a2b3c.js.gz")
    assert "headers" not in routes[4]["match"]
    with pytest.raises(console_routes.ConsoleBuildError, match=r"index\.html"):
        console_routes.console_routes(tmp_path)
    (tmp_path / "index.html").write_text("x")
    (tmp_path / "notes.xyz").write_text("x")
    with pytest.raises(console_routes.ConsoleBuildError, match="content type"):
        console_routes.console_routes(tmp_path)


def test_the_real_build_is_servable() -> None:
    """Every file `make web` produced gets a route (fails on a new file type or a huge chunk)."""
    if not (console_routes.CONSOLE_DIST / "index.html").is_file():
        pytest.fail("web/dist/console has no build: run `make web`")
    routes = console_routes.console_routes()
    files = [p for p in console_routes.CONSOLE_DIST.rglob("*") if p.is_file()]
    assert len(routes) == len(files) + 4


def test_committed_block_and_size_limit_match_the_generator() -> None:
    """deploy/envoy.yaml holds the generator's "not built" block verbatim, and Envoy's
    direct-response size limit is the generator's file size limit."""
    text = (console_routes.ROOT / "deploy" / "envoy.yaml").read_text()
    start = text.index("# render-block: console_routes\n")
    indent = text[text.rindex("\n", 0, start) + 1:start]
    block = text[start + len("# render-block: console_routes\n"):text.index(f"{indent}# end-block: console_routes")]
    assert block == console_routes.not_built_block(indent)
    assert f"max_direct_response_body_size_bytes: {console_routes.MAX_FILE_BYTES}\n" in text
