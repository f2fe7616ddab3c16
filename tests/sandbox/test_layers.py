"""Each isolation layer verified on its own from inside a real worker (the selfcheck job probes
fork, socket, reading /etc/passwd, writing /tmp, signalling the parent), plus the public health
entry points and the parent's caps on what a worker sends back."""

from __future__ import annotations

import pytest

from engine_svc.sandbox import api, bwrap, launcher
from engine_svc.sandbox.errors import SandboxError

from .helpers import BWRAP_USABLE, limits_for

ONLY = {"landlock": False, "seccomp": False, "bwrap": "off", "require": ()}


def probe(**layers: object) -> tuple[dict, dict]:
    outcome = launcher.run_job("selfcheck", {}, limits=limits_for("plain", **{**ONLY, **layers}))
    return outcome.result, outcome.isolation


def test_no_layer_at_all_allows_everything_probed() -> None:
    """The control: the probes do detect an unconfined worker (so the tests below can fail)."""
    probes, isolation = probe(rlimits=False)
    assert isolation["seccomp"] is False and isolation["landlock"] == 0 and isolation["rlimits"] is None
    assert probes["fork"] == probes["socket"] == probes["read_etc_passwd"] == probes["write_tmp"] == "allowed"


def test_seccomp_alone_blocks_processes_network_and_signals() -> None:
    probes, isolation = probe(seccomp=True)
    assert isolation["seccomp"] is True
    assert probes["fork"] == probes["socket"] == probes["kill_parent"] == "blocked (PermissionError)"
    assert probes["read_etc_passwd"] == "allowed"  # files are Landlock's job


def test_landlock_alone_blocks_reads_and_writes() -> None:
    probes, isolation = probe(landlock=True)
    assert isolation["landlock"] >= 1
    assert probes["read_etc_passwd"] == probes["write_tmp"] == "blocked (PermissionError)"
    assert probes["fork"] == "allowed"  # processes are seccomp's job
    if isolation["landlock"] >= 6:  # signal scoping: no signals to processes outside the domain
        assert probes["kill_parent"] == "blocked (PermissionError)"


@pytest.mark.skipif(not BWRAP_USABLE, reason="bubblewrap is not usable on this host")
def test_bwrap_alone_hides_the_filesystem_and_network() -> None:
    probes, isolation = probe(bwrap="on")
    assert isolation["bwrap"] is True
    assert probes["read_etc_passwd"] == "blocked (FileNotFoundError)"  # not mounted at all
    assert probes["write_tmp"] == "allowed"  # its private tmpfs; Landlock forbids it in production


def test_all_layers_together(mode: str) -> None:
    outcome = launcher.run_job("selfcheck", {}, limits=limits_for(mode))
    for name in ("fork", "socket", "read_etc_passwd", "write_tmp", "kill_parent"):
        assert outcome.result[name].startswith("blocked"), name
    assert outcome.isolation["landlock"] >= 1 and outcome.isolation["seccomp"] is True
    assert outcome.isolation["rlimits"]["as_mb"] == 512
    assert outcome.isolation["bwrap"] is (mode == "bwrap")


def test_selfcheck_and_isolation_report() -> None:
    api.selfcheck(limits_for("plain"))
    report = api.isolation_report(limits_for("plain"))
    assert report["seccomp"] is True and report["landlock_abi"] >= 1
    assert report["rlimits"]["memory_mb"] == 512
    assert report["last_selfcheck"]["probes"]["fork"].startswith("blocked")


def test_missing_required_layer_fails_closed() -> None:
    with pytest.raises(SandboxError) as info:
        launcher.run_job("selfcheck", {}, limits=limits_for("plain", landlock=False, require=("landlock",)))
    assert (info.value.kind, info.value.message) == (
        "internal", "required isolation layer(s) not active: landlock"
    )


@pytest.mark.parametrize("which", [None, "/bin/false"], ids=["not-installed", "installed-but-unusable"])
def test_without_bwrap_on_the_host_auto_falls_back(monkeypatch: pytest.MonkeyPatch, which: str | None) -> None:
    """CI hosts and non-root containers: no bwrap, or a bwrap that cannot create namespaces."""
    monkeypatch.setattr(bwrap.shutil, "which", lambda name: which)
    bwrap.bwrap_path.cache_clear()
    try:
        assert bwrap.bwrap_path() is None
        outcome = launcher.run_job("selfcheck", {}, limits=limits_for("plain", bwrap="auto"))
        assert outcome.isolation["bwrap"] is False and outcome.result["fork"].startswith("blocked")
        with pytest.raises(SandboxError, match="bubblewrap is required"):
            launcher.run_job("selfcheck", {}, limits=limits_for("plain", bwrap="on"))
    finally:
        bwrap.bwrap_path.cache_clear()


# ---- what comes back from the worker ---------------------------------------------------------------


def script(code: str, mode: str, **overrides: object) -> launcher.SandboxOutcome:
    return launcher.run_job("script", {"code": code}, limits=limits_for(mode, **overrides))


def test_script_job_returns_json(mode: str) -> None:
    assert script("def main(args, progress):\n    return {'ok': [1, 2.5, None]}", mode).result == {
        "ok": [1, 2.5, None]
    }


def test_result_over_the_cap_is_too_large(mode: str) -> None:
    with pytest.raises(SandboxError) as info:
        script("def main(args, progress):\n    return 'x' * (20 * 2**20)", mode, result_max_mb=8)
    assert (info.value.kind, info.value.message) == ("too_large", "result too large (20 MB > 8 MB)")


def test_non_json_result_is_a_clear_error(mode: str) -> None:
    with pytest.raises(SandboxError) as info:
        script("def main(args, progress):\n    return {'x': object()}", mode)
    assert info.value.kind == "internal"
    assert info.value.message.startswith("result is not JSON-serialisable (TypeError: Object of type object")


def test_nan_in_a_result_becomes_null(mode: str) -> None:
    outcome = script("def main(args, progress):\n    return {'x': [1.0, float('nan'), float('-inf')]}", mode)
    assert outcome.result == {"x": [1.0, None, None]}
    assert "NaN/Infinity" in outcome.logs


def test_output_before_a_crash_is_kept(mode: str) -> None:
    with pytest.raises(SandboxError) as info:
        script("import ctypes\ndef main(args, progress):\n    print('last words')\n    ctypes.string_at(0)", mode)
    assert info.value.kind == "crashed" and "last words" in info.value.logs


FORGE = """
import json, os, struct, sys
fd = json.loads(sys.argv[3])["out_fd"]
def main(args, progress):
    os.write(fd, struct.pack("!IQ", 17, {body}) + b'{{"type":"result"}}')
    os.write(fd, b"x" * 1000)
    import time; time.sleep(30)
"""


def test_forged_oversized_frame_is_refused_without_buffering(mode: str) -> None:
    with pytest.raises(SandboxError) as info:
        script(FORGE.format(body=2**40), mode, result_max_mb=8)
    assert (info.value.kind, info.value.message) == ("too_large", "result too large (1048576 MB, limit 8 MB)")


def test_forged_garbage_result_is_a_protocol_error(mode: str) -> None:
    with pytest.raises(SandboxError) as info:
        script(FORGE.format(body=1000), mode)
    assert info.value.kind == "protocol"
