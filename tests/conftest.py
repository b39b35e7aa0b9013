import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "handlers"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tiny_models  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """family → saved tiny LM dir, built once per session on first use."""
    cache = {}

    def get(family: str, classifier: bool = False) -> Path:
        key = (family, classifier)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"{family}-{'cls' if classifier else 'lm'}")
            cache[key] = tiny_models.build(family, out, classifier)
        return cache[key]

    return get
