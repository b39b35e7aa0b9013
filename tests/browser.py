"""What the browser tests need on the machine (bin/setup and bin/test provide it), named, so a
bare `pytest` says what to run instead of failing somewhere inside node."""

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRONTEND = ROOT / "frontend"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def require(*built: Path) -> None:
    """Fail, naming each missing piece, unless node, playwright-core, Chromium and `built` exist."""
    missing = []
    if not shutil.which("node"):
        missing.append("node (Node 20.19+)")
    if not (FRONTEND / "node_modules" / "playwright-core").is_dir():
        missing.append("frontend/node_modules (cd frontend && npm ci)")
    missing += [f"{path.relative_to(ROOT)} (cd frontend && npm run build)" for path in built if not path.exists()]
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if missing:
        pytest.fail(f"missing (bin/setup and bin/test provide them): {', '.join(missing)}")
