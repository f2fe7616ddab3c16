"""The production manifests parse and carry the engine's hardening (issue 4)."""

from __future__ import annotations

from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def _walk(node: object):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def test_every_manifest_parses() -> None:
    files = [*DEPLOY.glob("k8s/*.yaml"), DEPLOY / "compose.yaml"]
    assert len(files) >= 3
    for path in files:
        for doc in _docs(path):
            assert isinstance(doc, dict) and doc, path


def test_engine_pod_has_no_secrets_no_token_and_limits() -> None:
    docs = _docs(DEPLOY / "k8s" / "engine.yaml")
    (deployment,) = _by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (account,) = _by_kind(docs, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False and pod["serviceAccountName"] == account["metadata"]["name"]
    # No Secret anywhere in the engine's manifest: not as env, envFrom or volume.
    keys = {k for k, _ in _walk(docs)}
    assert not keys & {"secretKeyRef", "secretRef", "secret"}, keys & {"secretKeyRef", "secretRef", "secret"}
    assert all(d["kind"] != "Secret" for d in docs)
    (config,) = _by_kind(docs, "ConfigMap")
    assert "@" in config["data"]["ZQ_ENGINE_DATABASE_URL"] and ":" not in config["data"]["ZQ_ENGINE_DATABASE_URL"] \
        .split("//", 1)[1].split("@", 1)[0], "the engine's DB URL must not carry a password"
    (container,) = pod["containers"]
    limits = container["resources"]["limits"]
    assert limits["memory"] and limits["cpu"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_engine_egress_is_denied_except_dns_postgres_and_auth() -> None:
    (policy,) = _by_kind(_docs(DEPLOY / "k8s" / "engine.yaml"), "NetworkPolicy")
    spec = policy["spec"]
    assert "Egress" in spec["policyTypes"] and spec["podSelector"]["matchLabels"] == {"zquant/role": "engine"}
    ports = sorted(p["port"] for rule in spec["egress"] for p in rule["ports"])
    assert ports == [53, 53, 5432, 50051]
    for rule in spec["egress"]:
        assert rule.get("to"), "every egress rule names its destination (no open 'to')"
        assert all("ipBlock" not in peer for peer in rule["to"])


def test_compose_engine_is_bounded_in_memory_cpu_and_pids_with_no_egress() -> None:
    (doc,) = _docs(DEPLOY / "compose.yaml")
    engine = doc["services"]["engine"]
    assert engine["pids_limit"] > 0 and engine["mem_limit"] and engine["cpus"]
    assert engine["read_only"] is True and engine["cap_drop"] == ["ALL"]
    assert all(doc["networks"][n]["internal"] is True for n in engine["networks"])
    assert not {k for k, _ in _walk(engine)} & {"secrets", "env_file"}


def test_only_the_import_job_holds_a_write_credential() -> None:
    (job,) = _by_kind(_docs(DEPLOY / "k8s" / "engine-data-job.yaml"), "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    refs = [v for k, v in _walk(job) if k == "secretKeyRef"]
    assert refs == [{"name": "zquant-engine-writer", "key": "database-url"}]
