"""The project's JSON Schemas (schemas/*.json, one registry: a schema may $ref another by file name), used to
validate what readers take in (Ego-Exo4D records) and what builders write (EgoIT items, EgoBench items)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


@cache
def validator(ref: str) -> jsonschema.protocols.Validator:
    """A validator of `ref` ("egoit.schema.json", "take.schema.json#/$defs/...")."""
    resources = [
        (p.name, Resource.from_contents(json.loads(p.read_text()))) for p in sorted(SCHEMA_DIR.glob("*.json"))
    ]
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=Registry().with_resources(resources))


def schema_problem(instance: Any, ref: str, message_chars: int | None = None) -> str | None:
    """"<ref> at <field path>: <message>" of the first failing field, or None when the instance is valid."""
    error = jsonschema.exceptions.best_match(validator(ref).iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{ref} at {where or '<record>'}: {error.message[:message_chars]}"
