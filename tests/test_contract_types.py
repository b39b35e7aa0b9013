"""The visualizer's TypeScript types are what the wire contract's JSON Schema generates.

frontend/src/contract.ts is generated from docs/schema/exformer-v1.schema.json by
`cd frontend && npm run types` (frontend/scripts/contract-types.mjs, json-schema-to-typescript
from frontend/node_modules) and committed. Here the same generator writes a temporary copy,
which must equal the committed file byte for byte.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRONTEND = ROOT / "frontend"
SCHEMA = ROOT / "docs" / "schema" / "exformer-v1.schema.json"
COMMITTED = FRONTEND / "src" / "contract.ts"
GENERATOR = FRONTEND / "scripts" / "contract-types.mjs"


def test_committed_typescript_types_are_what_the_schema_generates(tmp_path):
    missing = []
    if not shutil.which("node"):
        missing.append("node (Node 20.19+)")
    if not (FRONTEND / "node_modules" / "json-schema-to-typescript").is_dir():
        missing.append("frontend/node_modules (cd frontend && npm ci)")
    if missing:
        pytest.fail(f"missing (bin/setup provides them): {', '.join(missing)}")

    generated = tmp_path / "contract.ts"
    result = subprocess.run(
        ["node", str(GENERATOR), "--schema", str(SCHEMA), "--out", str(generated)],
        cwd=FRONTEND,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{GENERATOR.name} failed:\n{result.stdout}{result.stderr}"

    expected, committed = generated.read_bytes(), COMMITTED.read_bytes()
    if committed != expected:
        first = next(
            (i for i, (a, b) in enumerate(zip(committed, expected)) if a != b), min(len(committed), len(expected))
        )
        line = committed[:first].count(b"\n") + 1
        pytest.fail(
            f"{COMMITTED.relative_to(ROOT)} is not what {SCHEMA.relative_to(ROOT)} generates "
            f"(first difference at line {line}): run `cd frontend && npm run types` and commit the result"
        )
