"""The package's docstring examples (`>>>`) hold as written: one test per module that has any.

They run with the real models of build/models (bin/setup prepares them), from a temporary
directory that links build/ (so an example that writes a file writes it there), with
ELLIPSIS and NORMALIZE_WHITESPACE. The client's examples call a TorchServe at
127.0.0.1:8080 (bin/serve's); here they call the test session's instead.
"""

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
SERVED_URL = "http://127.0.0.1:8080"  # the address the client's examples are written with


def modules_with_examples() -> dict[str, str]:
    """Every exformer module whose source has a `>>>` → its source, found without importing it."""
    found = {}
    for path in sorted((ROOT / "exformer").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if ">>>" in source:
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = source
    return found


SOURCES = modules_with_examples()
MODULES = sorted(SOURCES)
SERVED = {name for name, source in SOURCES.items() if SERVED_URL in source}


def run_examples(name: str, directory: Path, monkeypatch, url: str | None = None) -> None:
    (directory / "build").symlink_to(ROOT / "build")
    monkeypatch.chdir(directory)
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    for test in doctest.DocTestFinder().find(module):
        if url is not None:
            for example in test.examples:
                example.source = example.source.replace(SERVED_URL, url)
        runner.run(test, out=report.append)
    if runner.failures:
        pytest.fail(f"{runner.failures} of {runner.tries} examples failed:\n{''.join(report)}", pytrace=False)
    if not runner.tries:
        pytest.skip("every example is marked +SKIP")


def test_the_modules_with_examples_are_found():
    assert {"exformer.core.words", "exformer.explain.api", "exformer.client.http"} <= set(MODULES)
    assert SERVED == {"exformer.client.http"}


@pytest.mark.parametrize("name", [name for name in MODULES if name not in SERVED])
def test_the_docstring_examples_hold(name, tmp_path, monkeypatch):
    run_examples(name, tmp_path, monkeypatch)


@pytest.mark.parametrize("name", sorted(SERVED))
def test_the_client_examples_hold_against_a_served_model(name, tmp_path, monkeypatch, torchserve):
    run_examples(name, tmp_path, monkeypatch, url=torchserve.inference)
