"""Small units around the gRPC edge and readiness: client IP extraction, peer parsing, ready()."""

from __future__ import annotations

from pathlib import Path

import pytest

from auth_svc.app import create_app
from auth_svc.keys import NoSigningKey
from auth_svc.servicer import _peer_ip, client_ip
from tests.auth.helpers import FAST


class FakeContext:
    def __init__(self, peer: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._peer, self._md = peer, metadata

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._md


@pytest.mark.parametrize(("peer", "ip"), [
    ("ipv4:127.0.0.1:5000", "127.0.0.1"), ("ipv6:[::1]:5000", "::1"), ("ipv6:%5B::1%5D:5000", "::1"),
    ("ipv6:[2001:db8::7]:443", "2001:db8::7"), ("unix:/tmp/sock", ""), ("", ""),
])
def test_peer_ip(peer: str, ip: str) -> None:
    assert _peer_ip(peer) == ip


TRUSTED = frozenset({"127.0.0.1", "::1"})


@pytest.mark.parametrize(("peer", "xff", "ip"), [
    ("ipv4:127.0.0.1:1", "", "127.0.0.1"),
    ("ipv4:127.0.0.1:1", "198.51.100.1", "198.51.100.1"),
    ("ipv4:127.0.0.1:1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # client-written entries ignored
    ("ipv4:127.0.0.1:1", "garbage", "127.0.0.1"),
    ("ipv4:10.0.0.5:1", "198.51.100.1", "10.0.0.5"),  # not a trusted proxy: its XFF is not believed
    ("ipv6:[::1]:1", "2001:db8::1", "2001:db8::1"),
])
def test_client_ip(peer: str, xff: str, ip: str) -> None:
    md = (("x-forwarded-for", xff),) if xff else ()
    assert client_ip(FakeContext(peer, md), TRUSTED) == ip  # type: ignore[arg-type]


@pytest.mark.parametrize(("peer", "ip"), [
    ("ipv4:10.42.3.7:1", "198.51.100.1"),  # a gateway pod in the trusted pod network
    ("ipv4:10.43.0.1:1", "10.43.0.1"),  # outside it: its XFF is not believed
    ("ipv6:[fd00::5]:1", "198.51.100.1"),
])
def test_client_ip_trusts_networks_in_cidr_form(peer: str, ip: str) -> None:
    trusted = frozenset({"10.42.0.0/16", "fd00::/64"})
    assert client_ip(FakeContext(peer, (("x-forwarded-for", "198.51.100.1"),)), trusted) == ip  # type: ignore[arg-type]


def test_readiness_needs_migrations_and_a_signing_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    bare = create_app(url, FAST, migrate=False)
    try:
        with pytest.raises(RuntimeError, match="migrations not applied"):
            bare.ready()
    finally:
        bare.engine.dispose()
    app = create_app(url, FAST)
    try:
        with pytest.raises(NoSigningKey):
            app.ready()
        app.service.keys.ensure_key()
        app.ready()
        kid = app.service.keys.current().kid
        app.service.keys.ensure_key()  # idempotent: does not add a second key
        assert [k.kid for k in app.service.keys.published()] == [kid]
    finally:
        app.engine.dispose()
