"""Runs a rendered overlay (normally overlays/podman) with `podman kube play` on one machine.

    .venv/bin/python deploy/k8s/podman.py up deploy/k8s/overlays/podman
    .venv/bin/python deploy/k8s/podman.py down deploy/k8s/overlays/podman

`podman kube play` runs Pods, Deployments, ConfigMaps and PersistentVolumeClaims; it ignores
Services, NetworkPolicies, PodDisruptionBudgets and HPAs, refuses Secrets in the YAML, and has no
StatefulSets or Jobs. So `up`:

1. creates each Secret with `podman secret create` (a JSON map of base64 values, which is what
   kube play's secretKeyRef reads);
2. plays PostgreSQL (the StatefulSet as a one-replica Deployment with a PVC) and waits for it;
3. runs the Jobs as Pods (restartPolicy Never) and waits for each to exit 0 — the migrations and
   the sample data — in the order the manifests list them;
4. plays auth_svc, waits for it, mints task_svc's service key with
   `python -m auth_svc service-key svc-task` in the auth container and stores it as the
   zquant-task-engine-key secret (the same step the README gives for a cluster);
5. plays engine_svc, task_svc and the gateway.

Readiness: a TCP connect to the port each pod listens on (from the overlay's ConfigMaps), then
the gateway's own health checks seeing auth, task and engine SERVING (Envoy admin /clusters).
`down` removes every pod, volume and secret `up` created. Files go to build/podman/<overlay>/.
Needs CONTAINERS_CONF=deploy/image/containers.conf (runc; podman's default crun fails here).
"""

from __future__ import annotations

import base64
import copy
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from render import render

ROOT = Path(__file__).resolve().parents[2]
IGNORED = {"Service", "NetworkPolicy", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceAccount"}
SERVICE_KEY_SECRET = "zquant-task-engine-key"  # noqa: S105  (the Secret's name)
Doc = dict[str, Any]


class PodmanError(Exception):
    pass


def podman(*args: str, check: bool = True, input_text: str | None = None, timeout: float = 300) -> str:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, input=input_text, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise PodmanError(f"podman {' '.join(args[:3])}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _pod_spec(doc: Doc) -> Doc:
    return doc["spec"]["template"]["spec"] if "template" in doc["spec"] else doc["spec"]


def _strip_unsupported(spec: Doc) -> None:
    """gRPC probes are unknown to kube play (readiness is ignored anyway; liveness stays), and on
    the host network declared ports would be port mappings, which podman refuses there."""
    for container in spec["containers"]:
        container.pop("readinessProbe", None)
        container.pop("ports", None)
        if "grpc" in container.get("livenessProbe", {}):
            container.pop("livenessProbe")


def convert(docs: list[Doc]) -> dict[str, list[Doc]]:
    """Groups the overlay's objects into what kube play takes: secrets, postgres, jobs, auth, rest."""
    out: dict[str, list[Doc]] = {"secrets": [], "configmaps": [], "postgres": [], "jobs": [], "auth": [], "rest": []}
    for doc in copy.deepcopy(docs):
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind in IGNORED:
            continue
        if kind == "Secret":
            out["secrets"].append(doc)
        elif kind == "ConfigMap":
            out["configmaps"].append(doc)
        elif kind == "StatefulSet":
            claims = doc["spec"].pop("volumeClaimTemplates", [])
            spec = _pod_spec(doc)
            for claim in claims:
                pvc = f"{name}-{claim['metadata']['name']}"
                out["postgres"].append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                        "metadata": {"name": pvc}, "spec": claim["spec"]})
                spec.setdefault("volumes", []).append({"name": claim["metadata"]["name"],
                                                       "persistentVolumeClaim": {"claimName": pvc}})
            doc["kind"] = "Deployment"
            for key in ("serviceName", "podManagementPolicy", "updateStrategy"):
                doc["spec"].pop(key, None)
            _strip_unsupported(spec)
            out["postgres"].append(doc)
        elif kind == "Job":
            template = doc["spec"]["template"]
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "labels": template.get("metadata", {}).get("labels", {})},
                   "spec": template["spec"]}
            _strip_unsupported(pod["spec"])
            out["jobs"].append(pod)
        elif kind == "Deployment":
            _strip_unsupported(_pod_spec(doc))
            out["auth" if name == "zquant-auth" else "rest"].append(doc)
        else:
            raise PodmanError(f"{kind} {name}: no podman equivalent known")
    return out


def _secret_json(doc: Doc) -> str:
    values = {k: base64.b64encode(v.encode()).decode() for k, v in (doc.get("stringData") or {}).items()}
    values.update(doc.get("data") or {})
    return json.dumps(values)


def _with_configmaps(group: list[Doc], configmaps: list[Doc]) -> list[Doc]:
    """kube play resolves configMapRef only within the same file."""
    return [*configmaps, *group]


def _port(configmaps: list[Doc], name: str, key: str) -> int:
    data = next(c["data"] for c in configmaps if c["metadata"]["name"] == name)
    return int(data[key].rsplit(":", 1)[-1])


def create_secret(name: str, value: str) -> None:
    podman("secret", "rm", name, check=False)  # podman 4.3 has no `secret create --replace`
    podman("secret", "create", name, "-", input_text=value)


def wait_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise PodmanError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def wait_gateway_healthy(admin_port: int, timeout: float) -> None:
    """Until Envoy's admin /clusters shows a healthy host in each of auth, task and engine."""
    deadline = time.monotonic() + timeout
    clusters = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/clusters", timeout=2) as reply:
                clusters = reply.read().decode()
        except OSError:
            clusters = ""
        healthy = {line.split("::", 1)[0] for line in clusters.splitlines() if line.endswith("health_flags::healthy")}
        if {"auth", "task", "engine"} <= healthy:
            return
        time.sleep(0.5)
    raise PodmanError(f"the gateway saw no healthy auth/task/engine within {timeout:.0f} s:\n{clusters[-1500:]}")


def container_of(name: str, *, deployment: bool) -> str:
    """The container kube play made: NAME-CONTAINER for a Pod, NAME-pod-N-CONTAINER for a Deployment."""
    names = podman("ps", "-a", "--format", "{{.Names}}").split()
    prefix = f"{name}-pod-" if deployment else f"{name}-"
    own = sorted(n for n in names if n.startswith(prefix) and not n.endswith("-infra"))
    if not own:
        raise PodmanError(f"{name}: no container (have {names})")
    return own[0]


class Stack:
    def __init__(self, overlay: Path) -> None:
        self.overlay = overlay.resolve()
        self.workdir = ROOT / "build" / "podman" / self.overlay.name
        self.groups = convert(render(self.overlay))

    def _file(self, name: str, docs: list[Doc]) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / f"{name}.yaml"
        path.write_text("---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs))
        return path

    def _play(self, name: str, docs: list[Doc]) -> Path:
        path = self._file(name, docs)
        podman("kube", "play", "--network", "host", str(path))
        return path

    def up(self, timeout: float = 180) -> None:
        cms = self.groups["configmaps"]
        for secret in self.groups["secrets"]:
            create_secret(secret["metadata"]["name"], _secret_json(secret))
        self._play("postgres", _with_configmaps(self.groups["postgres"], cms))
        pg_env = {e["name"]: e.get("value") for d in self.groups["postgres"] if d["kind"] == "Deployment"
                  for e in _pod_spec(d)["containers"][0].get("env", [])}
        wait_port(int(pg_env.get("PGPORT") or 5432), timeout, "PostgreSQL")
        for job in self.groups["jobs"]:
            self._play(f"job-{job['metadata']['name']}", _with_configmaps([job], cms))
            self._wait_exit(job["metadata"]["name"], timeout)
        self._play("auth", _with_configmaps(self.groups["auth"], cms))
        wait_port(_port(cms, "zquant-auth", "ZQ_AUTH_ADDR"), timeout, "auth_svc")
        self.mint_service_key()
        self._play("services", _with_configmaps(self.groups["rest"], cms))
        wait_port(_port(cms, "zquant-engine", "ZQ_ENGINE_ADDR"), timeout, "engine_svc")
        wait_port(_port(cms, "zquant-task", "ZQ_TASK_ADDR"), timeout, "task_svc")
        wait_port(_port(cms, "zquant-gateway", "ZQ_GATEWAY_PORT"), timeout, "the gateway")
        # Listening is not ready: the engine serves once its sandbox self-check passed, and the
        # gateway routes to a service only after its own gRPC health check saw it SERVING.
        wait_gateway_healthy(_port(cms, "zquant-gateway", "ZQ_GATEWAY_ADMIN_PORT"), timeout)

    def _wait_exit(self, pod: str, timeout: float) -> None:
        container = container_of(pod, deployment=False)
        code = podman("wait", container, timeout=timeout).strip()
        if code != "0":
            logs = podman("logs", container, check=False)
            raise PodmanError(f"job {pod} exited {code}:\n{logs[-2000:]}")

    def mint_service_key(self) -> None:
        container = container_of("zquant-auth", deployment=True)
        out = podman("exec", container, "sh", "-c",
                     "python -m auth_svc service-key svc-task /tmp/svc-task.json >/dev/null 2>&1 "
                     "&& cat /tmp/svc-task.json && rm -f /tmp/svc-task.json")
        pair = json.loads(out)
        doc = {"stringData": {"api-key": pair["api_key"], "api-secret": pair["api_secret"]}}
        create_secret(SERVICE_KEY_SECRET, _secret_json(doc))

    def down(self) -> None:
        for name in ("services", "auth", *[f"job-{j['metadata']['name']}" for j in self.groups["jobs"]], "postgres"):
            path = self.workdir / f"{name}.yaml"
            if path.is_file():
                podman("kube", "down", str(path), check=False)
        for doc in self.groups["postgres"]:
            if doc["kind"] == "PersistentVolumeClaim":
                podman("volume", "rm", "--force", doc["metadata"]["name"], check=False)
        for name in [s["metadata"]["name"] for s in self.groups["secrets"]] + [SERVICE_KEY_SECRET]:
            podman("secret", "rm", name, check=False)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print(__doc__, file=sys.stderr)
        return 2
    stack = Stack(Path(argv[1]))
    if argv[0] == "up":
        try:
            stack.up()
        except (PodmanError, subprocess.TimeoutExpired) as exc:
            print(f"podman.py up: {exc}", file=sys.stderr)
            return 1
    else:
        stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
