"""What every benchmark prints: its Markdown table header, and the code it measured."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def header(*columns: str, text_columns: int = 0) -> None:
    """Print the header row; the first `text_columns` are left-aligned, the numbers right."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join(["---"] * text_columns + ["---:"] * (len(columns) - text_columns)) + "|")


def code_version() -> str:
    """HEAD, and whether exformer/ had uncommitted changes (a figure is of the tree it ran)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "exformer"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return head + (f" + uncommitted changes in {len(dirty.splitlines())} exformer/ files" if dirty else "")
