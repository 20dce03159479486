"""JSON schemas for kubeconform, made from the local API server's OpenAPI and our CRD.

kubeconform normally downloads schemas; this machine (and CI) cannot, and the schemas of the
very API server the chart is installed on are the right ones anyway. One file per kind:
``<dir>/<group>/<kind>_<version>.json`` (core group: ``<dir>/v1/...``, as kubeconform's
``.Group`` of ``apiVersion: v1`` is ``v1``), each holding only the
definitions it references. Like openapi2jsonschema's ``--strict``, objects with declared
properties refuse unknown ones, and int-or-string / quantity fields accept both types.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

LOCATION = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
"""The -schema-location template (relative to the schema directory) matching the layout."""

_BOTH = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
_SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": _BOTH,
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "oneOf": [{"type": "string"}, {"type": "number"}]
    },
}


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get("format") == "int-or-string":
            return _BOTH
        out = {k: _strict(v) for k, v in node.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(x) for x in node]
    return node


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            found.add(ref.removeprefix("#/definitions/"))
        for v in node.values():
            _refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _refs(v, found)


def _write(out: Path, group: str, kind: str, version: str, schema: dict[str, Any]) -> None:
    path = out / (group or version) / f"{kind.lower()}_{version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema))


def from_openapi_v2(doc: dict[str, Any], out: Path) -> int:
    """Write a schema per kind of the API server's /openapi/v2 document; returns the count."""
    definitions = {name: _SPECIAL.get(name) or _strict(d) for name, d in doc["definitions"].items()}
    count = 0
    for name, definition in doc["definitions"].items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            needed: set[str] = set()
            todo = [name]
            while todo:
                current = todo.pop()
                if current in needed:
                    continue
                needed.add(current)
                refs: set[str] = set()
                _refs(definitions[current], refs)
                todo.extend(refs - needed)
            schema = {
                "$ref": f"#/definitions/{name}",
                "definitions": {n: definitions[n] for n in needed},
            }
            _write(out, gvk["group"], gvk["kind"], gvk["version"], schema)
            count += 1
    return count


def from_crd(crd_file: Path, out: Path) -> None:
    """Write the schema of every served version of a CustomResourceDefinition file."""
    crd = yaml.safe_load(crd_file.read_text())
    spec = crd["spec"]
    for version in spec["versions"]:
        schema = _strict(version["schema"]["openAPIV3Schema"])
        props = schema.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props["metadata"] = {"type": "object"}
        _write(out, spec["group"], spec["names"]["kind"], version["name"], schema)
