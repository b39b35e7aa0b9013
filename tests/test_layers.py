"""The package's layers import one way (pyproject.toml, [tool.importlinter]): contract ← core ←
explain ← serving, contract ← client, the CLI on top; the client and the contract import no
torch; only the serving layer knows TorchServe; no cycles inside a layer."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": ""},
    )


def test_every_import_contract_is_kept():
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr  # the output names the contract and the import


def test_a_wrong_import_breaks_its_contract_by_name(tmp_path):
    """The check can fail: the contract importing torch, and the core importing the explain layer."""
    shutil.copytree(ROOT / "exformer", tmp_path / "exformer", ignore=shutil.ignore_patterns("_static", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    words = tmp_path / "exformer" / "contract" / "vocabulary.py"
    words.write_text(words.read_text() + "\nimport torch  # noqa\n")
    words_core = tmp_path / "exformer" / "core" / "words.py"
    words_core.write_text(words_core.read_text() + "\nfrom ..explain import checks  # noqa\n")
    out = lint(tmp_path)
    assert out.returncode != 0
    assert "The client and the contract import no torch (the base install has none) BROKEN" in out.stdout
    assert "exformer.contract.vocabulary -> torch" in out.stdout
    assert "Layers: cli > serving > explain > core | client > contract BROKEN" in out.stdout
    assert "exformer.core.words -> exformer.explain.checks" in out.stdout
