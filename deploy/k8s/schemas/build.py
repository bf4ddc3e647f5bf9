"""Build the JSON Schemas kubeconform validates deploy/k8s/ against, from registry packages only.

    python deploy/k8s/schemas/build.py kubernetes WHEEL VERSION OUTDIR KIND-FILE...
        Standalone (references inlined) strict schemas of the Kubernetes kinds used here, from the
        schemas the PyPI package `kubernetes-validate` ships (VERSION e.g. 1.33.0).
    python deploy/k8s/schemas/build.py crd OUTDIR CRD.yaml...
        Strict JSON Schemas of CustomResourceDefinitions (the KEDA CRDs from the Go module
        github.com/kedacore/keda/v2), named <kind>_<version>.json as kubeconform looks them up.

`make k8s-check` runs the first; `make k8s-crd-schemas` the second (its output is committed).
"""

from __future__ import annotations

import copy
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml


def _inline(node: Any, defs: dict[str, Any], stack: tuple[str, ...] = ()) -> Any:
    if isinstance(node, list):
        return [_inline(v, defs, stack) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        if name in stack:  # a recursive type (JSONSchemaProps): accept anything below this point
            return rest
        return {**_inline(defs[name], defs, (*stack, name)), **rest}
    return {k: _inline(v, defs, stack) for k, v in node.items()}


def kubernetes(wheel: str, version: str, outdir: str, kinds: list[str]) -> None:
    """Write standalone strict schemas of ``kinds`` (file stems, e.g. ``deployment-apps-v1``)."""
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{version}-local-strict/"
    out = Path(outdir) / f"v{version}-standalone-strict"
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        defs = json.loads(zf.read(prefix + "_definitions.json"))["$defs"]
        for kind in kinds:
            schema = json.loads(zf.read(f"{prefix}{kind}.json"))
            standalone = _inline(schema, defs)
            standalone["$schema"] = "http://json-schema.org/schema#"
            (out / f"{kind}.json").write_text(json.dumps(standalone, indent=1, sort_keys=True) + "\n")


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if "properties" in out and "additionalProperties" not in out and not out.get(
        "x-kubernetes-preserve-unknown-fields"
    ):
        out["additionalProperties"] = False
    return out


def crd(outdir: str, files: list[str]) -> None:
    """Write ``<kind>_<version>.json`` for every served version of every CRD in ``files``."""
    out = Path(outdir)
    for file in files:
        for doc in yaml.safe_load_all(Path(file).read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            kind = doc["spec"]["names"]["kind"].lower()
            group = doc["spec"]["group"]
            for version in doc["spec"]["versions"]:
                schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                props = schema.setdefault("properties", {})
                props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
                props["kind"] = {"type": "string", "enum": [doc["spec"]["names"]["kind"]]}
                props["metadata"] = {"type": "object"}
                schema["$schema"] = "http://json-schema.org/schema#"
                path = out / f"{kind}_{version['name']}.json"
                path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
                print(f"wrote {path}")


def main(argv: list[str]) -> int:
    """Command line entry point."""
    if len(argv) >= 5 and argv[1] == "kubernetes":
        kubernetes(argv[2], argv[3], argv[4], argv[5:])
        return 0
    if len(argv) >= 4 and argv[1] == "crd":
        crd(argv[2], argv[3:])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
