"""Write the contract's JSON Schema (docs/schema/exformer-v1.schema.json) from the pydantic
models; the visualizer's TypeScript types are generated from that file (frontend: `npm run
types`). A test fails when either committed file differs from what the models generate.

    python -m exformer.contract.schema [OUT]
"""

import sys
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import requests, responses
from .requests import AttentionRequest, GradientsRequest
from .responses import (
    AblationResponse,
    AttentionResponse,
    CostEstimate,
    ErrorResponse,
    GenerationResponse,
    GradientsResponse,
    ModelDetailsResponse,
    PathResponse,
    SparseRows,
)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "schema" / "exformer-v1.schema.json"
CONTRACT_MODELS = (
    AttentionRequest,
    GradientsRequest,
    AttentionResponse,
    ModelDetailsResponse,
    GradientsResponse,
    GenerationResponse,
    AblationResponse,
    CostEstimate,
    ErrorResponse,
    SparseRows,
    PathResponse,
)  # bases the generated types extend


def contract_schema() -> dict:
    """One schema: every request (as a client writes it) and response (as the server sends it)
    under $defs, and a top-level object naming them, so generated types keep their names."""
    modes: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (model, "validation" if model.__name__.endswith("Request") else "serialization") for model in CONTRACT_MODELS
    ]
    refs, schema = models_json_schema(modes, ref_template="#/$defs/{model}")
    schema.update(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "ExformerContract",
            "description": "The wire contract (v1) of exformer-serve, generated from exformer.contract.",
            "type": "object",
            "properties": {model.__name__: refs[model, mode] for model, mode in modes},
            "additionalProperties": False,
        }
    )
    for name, definition in schema["$defs"].items():  # the generated types extend as the models do
        model = getattr(responses, name, None) or getattr(requests, name, None)
        base = model.__mro__[1].__name__ if isinstance(model, type) else None
        if base in schema["$defs"]:
            definition["x-extends"] = base
    return schema


def schema_text() -> str:
    return orjson.dumps(contract_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else SCHEMA_PATH
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(schema_text())
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
