"""MkDocs hook: tables generated at build time, so the documentation cannot drift from the code.

`<!-- fields: ModelName -->` in a page becomes the table of that model's fields from the
committed JSON Schema (docs/schema/exformer-v1.schema.json, itself generated from
exformer.contract and checked by a test): field, type, default, description.
`<!-- settings -->` becomes the table of an archive's `handler:` settings from
exformer.contract.settings.Settings.
"""

import json
import re
from pathlib import Path

SCHEMA = json.loads((Path(__file__).parent / "schema" / "exformer-v1.schema.json").read_text())
DEFS = SCHEMA["$defs"]


def _type(node: dict) -> str:
    if "$ref" in node:
        return node["$ref"].rsplit("/", 1)[1]
    if "anyOf" in node:
        return " \\| ".join(_type(n) for n in node["anyOf"])
    if "enum" in node:
        return " \\| ".join(f'`{json.dumps(v)}`' for v in node["enum"])
    if "const" in node:
        return f'`{json.dumps(node["const"])}`'
    if node.get("type") == "array":
        return f"list of {_type(node.get('items', {}))}" if node.get("items") else "list"
    if node.get("type") == "object":
        values = node.get("additionalProperties")
        return f"map of {_type(values)}" if isinstance(values, dict) else "object"
    return node.get("type", "any")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def fields_table(name: str) -> str:
    model = DEFS[name]
    required = set(model.get("required", []))
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for field, node in model.get("properties", {}).items():
        default = "required" if field in required else f'`{json.dumps(node["default"])}`' if "default" in node else "—"
        rows.append(f"| `{field}` | {_type(node)} | {default} | {_cell(node.get('description', ''))} |")
    return "\n".join(rows)


def settings_table() -> str:
    from exformer.contract.settings import Settings

    rows = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    schema = Settings.model_json_schema()["properties"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `{name}` | {_type(schema[name])} | `{json.dumps(field.default)}` | {_cell(field.description or '')} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files) -> str:
    markdown = re.sub(r"<!-- fields: (\w+) -->", lambda m: fields_table(m.group(1)), markdown)
    return markdown.replace("<!-- settings -->", settings_table())
