#!/usr/bin/env python3
"""Validate armorred's SBOMs with the reference tooling.

    validate_sbom.py SPDX_JSON CDX_JSON [VEX_JSON]   # exit 0 if all are valid, 1 with every error otherwise
    validate_sbom.py --print-license-ids  # regenerate src/sbom/spdx_license_ids.txt

SPDX 2.3: parsed and validated by spdx-tools (the library behind `pyspdxtools -i FILE`).
CycloneDX 1.5: validated against the official JSON schema by cyclonedx-python-lib's strict
JSON validator, then checked for what a schema cannot express: every bom-ref is unique,
every dependency names a declared bom-ref, and every purl parses and is canonical
(packageurl-python, a cyclonedx-python-lib dependency).
OpenVEX 0.2.0: validated against the OpenVEX JSON schema (tests/fixtures/openvex/, copied from
the OpenVEX spec) with jsonschema, then every product and subcomponent purl must parse and be
canonical, and every vulnerability name must be a CVE id.

Needs: pip install spdx-tools 'cyclonedx-python-lib[json-validation]' (tested with spdx-tools
0.8.3 and 0.8.5, cyclonedx-python-lib 8.5.0 and 11.12.0).
"""

import json
import sys


def spdx_errors(path):
    from spdx_tools.spdx.parser.error import SPDXParsingError
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    try:
        document = parse_file(path)
    except SPDXParsingError as e:
        return [f"parse: {m}" for m in e.get_messages()]
    errors = [m.validation_message for m in validate_full_spdx_document(document)]
    if document.creation_info.spdx_version != "SPDX-2.3":
        errors.append(f"spdxVersion is {document.creation_info.spdx_version}, not SPDX-2.3")
    return errors


def cyclonedx_errors(path):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    with open(path, encoding="utf-8") as f:
        text = f.read()
    validator = JsonStrictValidator(SchemaVersion.V1_5)
    try:
        found = validator.validate_str(text, all_errors=True)
    except TypeError:  # cyclonedx-python-lib < 9 reports only the first error
        found = validator.validate_str(text)
        found = [found] if found else []
    errors = [f"schema: {e.data.message} at {list(e.data.absolute_path)}" for e in (found or [])]
    if errors:
        return errors

    bom = json.loads(text)
    if bom.get("specVersion") != "1.5":
        errors.append(f"specVersion is {bom.get('specVersion')!r}, not 1.5")
    refs = [bom["metadata"]["component"]["bom-ref"]]
    refs += [c["bom-ref"] for c in bom.get("components", [])]
    declared = set(refs)
    if len(declared) != len(refs):
        errors.append("bom-refs are not unique")
    for dep in bom.get("dependencies", []):
        for ref in [dep["ref"], *dep.get("dependsOn", [])]:
            if ref not in declared:
                errors.append(f"dependency names undeclared bom-ref {ref!r}")
    for component in [bom["metadata"]["component"], *bom.get("components", [])]:
        errors += purl_errors(component.get("purl"))
        for ancestor in component.get("pedigree", {}).get("ancestors", []):
            errors += purl_errors(ancestor.get("purl"))
        for prop in component.get("properties", []):
            if prop["name"] == "nix:purl":
                errors += purl_errors(prop["value"])
    return errors


def vex_errors(path):
    import os
    import re

    import jsonschema

    schema_path = os.path.join(os.path.dirname(__file__), "fixtures", "openvex", "openvex_json_schema.json")
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    with open(path, encoding="utf-8") as f:
        vex = json.load(f)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [f"schema: {e.message} at {list(e.absolute_path)}" for e in validator.iter_errors(vex)]
    if errors:
        return errors
    for s in vex["statements"]:
        name = s["vulnerability"]["name"]
        if not re.fullmatch(r"CVE-[0-9]{4}-[0-9]{4,}", name):
            errors.append(f"vulnerability {name!r} is not a CVE id")
        for product in s.get("products", []):
            for c in [product, *product.get("subcomponents", [])]:
                errors += purl_errors(c.get("identifiers", {}).get("purl"))
                errors += purl_errors(c.get("@id"))
    return errors


def purl_errors(purl):
    """A purl must parse and already be in packageurl-python's canonical form."""
    from packageurl import PackageURL

    if purl is None:
        return []
    try:
        canonical = PackageURL.from_string(purl).to_string()
    except ValueError as e:
        return [f"purl {purl!r} does not parse: {e}"]
    return [] if canonical == purl else [f"purl {purl!r} is not canonical ({canonical!r})"]


def print_license_ids():
    """SPDX license ids (not exceptions) that both validators accept."""
    import importlib.resources

    import cyclonedx.schema._res as res
    from license_expression import get_license_index

    schema = json.loads(importlib.resources.files(res).joinpath("spdx.SNAPSHOT.schema.json").read_text())
    licenses, exceptions = set(), set()
    for entry in get_license_index():
        for key in [entry["spdx_license_key"], *(entry["other_spdx_license_keys"] or [])]:
            if key:
                (exceptions if entry["is_exception"] else licenses).add(key)
    ids = sorted((set(schema["enum"]) & licenses) - exceptions)
    print("# SPDX license identifiers accepted by both spdx-tools (license-expression) and the")
    print(f"# CycloneDX schema (SPDX list {schema['$comment']}). Generated by")
    print("# `tests/validate_sbom.py --print-license-ids` with the oldest validators CI pins, so")
    print("# every id here passes them; other ids become LicenseRef-/named licenses.")
    for i in ids:
        print(i)


def main(argv):
    if argv[1:] == ["--print-license-ids"]:
        print_license_ids()
        return 0
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    failed = False
    checks = [("SPDX", argv[1], spdx_errors), ("CycloneDX", argv[2], cyclonedx_errors)]
    if len(argv) == 4:
        checks.append(("OpenVEX", argv[3], vex_errors))
    for kind, path, check in checks:
        errors = check(path)
        if errors:
            failed = True
            print(f"{kind} {path}: {len(errors)} error(s)", file=sys.stderr)
            for e in errors:
                print(f"  - {e}", file=sys.stderr)
        else:
            print(f"{kind} {path}: valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
