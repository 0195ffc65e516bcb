#!/usr/bin/env python3
"""Check that every SourceBuild in examples/*.yaml is valid against the CRD's schema.

Usage: check-examples.py CRD.yaml EXAMPLE.yaml...   (needs PyYAML: scripts/tools.sh pyyaml)

Applies the OpenAPI v3 subset the CRD uses, the way the API server does: type, nullable,
required, properties (an unknown field is an error here, where the API server would prune
it: in an example it is a typo), additionalProperties, enum, pattern, minLength/maxLength,
maxItems, x-kubernetes-int-or-string. CEL rules (x-kubernetes-validations) are not
evaluated, except the `source` one-of rule, checked by hand below; the Rust tests and a real
API server cover the rest. Other kinds (a ConfigMap beside the SourceBuild) are skipped.
"""

import re
import sys

import yaml

TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
}


def validate(value, schema, path, errors):
    if value is None:
        if not schema.get("nullable"):
            errors.append(f"{path}: null is not allowed")
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            errors.append(f"{path}: want an integer or a string, got {value!r}")
        return
    want = schema.get("type")
    if want:
        ok = isinstance(value, TYPES[want]) and not (
            want in ("integer", "number") and isinstance(value, bool)
        )
        if not ok:
            errors.append(f"{path}: want {want}, got {type(value).__name__} {value!r}")
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema:
            try:
                if not re.search(schema["pattern"], value):
                    errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
            except re.error as e:
                errors.append(f"{path}: the CRD's pattern does not compile ({e}): {schema['pattern'][:60]}...")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: longer than {schema['maxLength']}")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: more than {schema['maxItems']} items")
        for i, item in enumerate(value):
            validate(item, schema.get("items", {}), f"{path}[{i}]", errors)
    if isinstance(value, dict):
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errors.append(f"{path}: more than {schema['maxProperties']} entries")
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: missing required field {key!r}")
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if props is not None and key in props:
                validate(item, props[key], f"{path}.{key}", errors)
            elif isinstance(extra, dict):
                validate(item, extra, f"{path}.{key}", errors)
            elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f"{path}: unknown field {key!r}")


def check_cel_by_hand(doc, path, errors):
    source = (doc.get("spec") or {}).get("source") or {}
    kinds = [k for k in ("git", "configMap", "archive", "oci") if k in source]
    if len(kinds) != 1:
        errors.append(f"{path}.spec.source: exactly one of git, configMap, archive or oci, got {kinds}")


def main(argv):
    crd_path, examples = argv[1], argv[2:]
    crd = next(d for d in yaml.safe_load_all(open(crd_path)) if d)
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    versions = {
        f"{group}/{v['name']}": v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]
    }
    failed = checked = 0
    for example in examples:
        for i, doc in enumerate(yaml.safe_load_all(open(example))):
            if not doc or doc.get("kind") != kind:
                continue
            name = f"{example}#{i} {kind}/{(doc.get('metadata') or {}).get('name')}"
            errors = []
            schema = versions.get(doc.get("apiVersion"))
            if schema is None:
                errors.append(f"apiVersion {doc.get('apiVersion')!r} is not served by the CRD")
            else:
                # apiVersion, kind and metadata are the API server's business, not the schema's.
                body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
                validate(body, schema, "", errors)
                check_cel_by_hand(doc, "", errors)
            if not (doc.get("metadata") or {}).get("name"):
                errors.append("metadata.name is missing")
            checked += 1
            if errors:
                failed += 1
                print(f"FAIL {name}")
                for e in errors:
                    print(f"  {e}")
            else:
                print(f"ok   {name}")
    if checked == 0:
        print(f"no {kind} found in {examples}")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
