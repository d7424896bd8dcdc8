"""Validate JSON documents against the JSON Schemas in docs/schemas/.

Reads a JSON array of {"schema": "<file name in docs/schemas>", "instance": ...}
on stdin; prints one line per invalid document and exits 1 if any.
Used by the Rust tests (tests/support/schema.rs) with the project's .venv,
where jsonschema comes with cfn-lint (pinned in requirements-dev.txt).
"""
import json
import pathlib
import sys

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

SCHEMAS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "schemas"


def main():
    by_file, resources = {}, []
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        doc = json.loads(path.read_text())
        Draft202012Validator.check_schema(doc)
        by_file[path.name] = doc
        resources.append((doc["$id"], Resource.from_contents(doc)))
    registry = Registry().with_resources(resources)
    bad = 0
    for i, item in enumerate(json.load(sys.stdin)):
        validator = Draft202012Validator(by_file[item["schema"]], registry=registry,
                                         format_checker=FormatChecker())
        for error in validator.iter_errors(item["instance"]):
            bad += 1
            where = "/".join(str(p) for p in error.absolute_path)
            print(f"document {i} ({item['schema']}) at /{where}: {error.message[:300]}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
