"""The code's habits, checked with the test command: ruff's lint and format, and mypy on the package.

Their settings are in pyproject.toml ([tool.ruff], [tool.mypy]); the versions are pinned in
requirements.txt. To fix what these report: `.venv/bin/ruff check --fix exformer tests bench`,
`.venv/bin/ruff format exformer tests bench`, `.venv/bin/mypy exformer`.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["exformer", "tests", "bench"]

pytestmark = pytest.mark.style


def run(*command: str) -> None:
    done = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(command)}` exited {done.returncode}:\n{done.stdout}{done.stderr}", pytrace=False)


def test_ruff_finds_nothing_to_lint():
    run("ruff", "check", "--no-fix", *PATHS)


def test_ruff_format_would_change_no_file():
    run("ruff", "format", "--check", *PATHS)


def test_mypy_finds_no_type_errors_in_the_package():
    run("mypy", "exformer")
