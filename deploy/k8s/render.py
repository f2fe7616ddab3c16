"""Renders a kustomization (deploy/k8s/overlays/*) offline: `kubectl kustomize` for the subset
of kustomize this repository uses, in plain Python, so CI needs neither kubectl nor network.

    .venv/bin/python deploy/k8s/render.py deploy/k8s/overlays/local > local.yaml

Supported (anything else in a kustomization.yaml is an error, never silently ignored):
- ``resources``: YAML files and directories holding a kustomization.yaml (bases);
- ``patches``: ``path`` to strategic-merge patches, each document matched by kind and name
  (maps merge; lists of maps with a ``name`` merge by name, new items first as kustomize
  puts them; other lists are replaced);
- ``images``: ``name`` → ``newName`` / ``newTag`` in every container and init container.

tests/deploy/test_k8s.py renders every overlay and, where kubectl is installed, checks the
output equals `kubectl kustomize`.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "patches", "images"}
Doc = dict[str, Any]


class RenderError(Exception):
    pass


def _load(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _key(doc: Doc) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def merge(base: Any, patch: Any) -> Any:
    """Strategic merge, the part of it the patches here need."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and patch
            and all(isinstance(x, dict) and "name" in x for x in base + patch)):
        by_name = {x["name"]: x for x in base}
        # As kustomize does: items only in the patch come first, in the patch's order.
        added = [copy.deepcopy(x) for x in patch if x["name"] not in by_name]
        patched = {x["name"]: x for x in patch}
        return added + [merge(x, patched[x["name"]]) if x["name"] in patched else x for x in base]
    return copy.deepcopy(patch)


def _set_images(doc: Doc, images: list[dict[str, str]]) -> None:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec") if "template" in spec else spec if doc["kind"] == "Pod" else None
    if not pod:
        return
    for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
        name, _, tag = container["image"].partition(":")
        for image in images:
            if image["name"] == name:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def render(directory: Path) -> list[Doc]:
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise RenderError(f"{kfile}: unsupported fields {sorted(unknown)} (render.py knows {sorted(SUPPORTED)})")
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        docs += render(path) if path.is_dir() else _load(path)
    seen: set[tuple[str, str]] = set()
    for doc in docs:
        if _key(doc) in seen:
            raise RenderError(f"{directory}: {doc['kind']} {doc['metadata']['name']} defined twice")
        seen.add(_key(doc))
    for entry in spec.get("patches", []):
        if set(entry) != {"path"}:
            raise RenderError(f"{kfile}: only `patches: - path: FILE` is supported")
        for patch in _load(directory / entry["path"]):
            matches = [i for i, d in enumerate(docs) if _key(d) == _key(patch)]
            if not matches:
                raise RenderError(f"{kfile}: patch target {patch['kind']} {patch['metadata']['name']} not found")
            docs[matches[0]] = merge(docs[matches[0]], patch)
    images = spec.get("images", [])
    for doc in docs:
        _set_images(doc, images)
    return docs


def dump(docs: list[Doc]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=True, width=1000) for d in docs)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(dump(render(Path(argv[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
