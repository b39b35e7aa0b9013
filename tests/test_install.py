"""`pip install exformer` (the base) is the client: built as a wheel with the standard build tool,
installed into a fresh virtual environment with no torch, it calls a running TorchServe with
`Client`, saves an HTML view, and runs `exformer explain` on a CSV."""

import csv
import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "accelerate",
    "captum",
    "torchserve",
    "torch-model-archiver",
)


def run(*command, **options) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in command], capture_output=True, text=True, **options)
    assert out.returncode == 0, f"{command}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `python -m build` makes from a copy of the sources (the checkout stays clean)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "exformer", source / "exformer", ignore=shutil.ignore_patterns("__pycache__"))
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", source / "dist", source)
    (built,) = (source / "dist").glob("exformer-*.whl")
    return built


@pytest.fixture(scope="module")
def client_venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the base install only (versions held to requirements.txt's pins)."""
    venv = tmp_path_factory.mktemp("client") / "venv"
    run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv)
    run(
        venv / "bin/python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-c",
        ROOT / "requirements.txt",
        wheel,
    )
    return venv


def test_the_wheel_holds_the_package_and_the_standalone_views_but_no_test_helpers(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for part in (
        "exformer/contract/",
        "exformer/core/",
        "exformer/explain/",
        "exformer/serving/",
        "exformer/client/",
        "exformer/cli/",
    ):
        assert any(n.startswith(part) for n in names), part
    assert "exformer/client/_static/exformer-views.js" in names
    assert "exformer/client/_static/exformer-views.css" in names
    assert "exformer/serving/forkserver-python" in names
    assert not any("support/" in n or n.startswith("tests/") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA"))).decode()
    base = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert base and not any(heavy in line for line in base for heavy in ("torch", "transformers", "captum")), base


def test_the_base_install_has_no_torch(client_venv):
    installed = run(client_venv / "bin/python", "-m", "pip", "list", "--format=json").stdout
    names = {p["name"].lower() for p in json.loads(installed)}
    assert "exformer" in names
    assert not names & set(HEAVY), names & set(HEAVY)


def test_the_base_install_calls_a_server_saves_a_view_and_explains_a_csv(client_venv, torchserve, tmp_path):
    script = tmp_path / "client.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        from exformer import Client, RequestError

        client = Client({torchserve.inference!r}, management_url={torchserve.management!r})
        a = client.attention("minilm-attention", "The cat sat on the mat.")
        assert a.attention.shape == (6, 12, 9, 9), a.attention.shape
        g = client.gradients("sentiment-gradients", "A dull, lifeless film.", n_steps=8)
        assert g.target["label"] == "negative" and g.attributions.shape == (len(g.tokens),)
        g.save_html({str(tmp_path / "dull.html")!r})
        try:
            client.attention("minilm-attention", "The cat sat.", layers=[6])
            raise SystemExit("no RequestError")
        except RequestError as error:
            assert error.field == "layers", error.field
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
        assert not heavy, heavy
        print("ok")
    """)
    )
    assert run(client_venv / "bin/python", script, cwd=tmp_path).stdout.strip() == "ok"
    page = (tmp_path / "dull.html").read_text()
    assert "<script>" in page and "dull" in page and len(page) > 50_000  # the views' script inlined

    rows = tmp_path / "reviews.csv"
    with rows.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "review"])
        writer.writerows([("a", "A warm, funny film."), ("b", "A dull film."), ("c", "")])
    out = tmp_path / "results"
    run(
        client_venv / "bin/exformer",
        "explain",
        "sentiment-gradients",
        rows,
        "--text-column",
        "review",
        "--id-column",
        "id",
        "--out",
        out,
        "--n-steps",
        "8",
        "--url",
        torchserve.inference,
        "--management-url",
        torchserve.management,
        "--no-progress",
        "--json",
        cwd=tmp_path,
    )
    read = (
        "import pyarrow.parquet as pq; t = pq.read_table('results'); "
        "print([(r['id'], r['prediction'], r['error_field']) for r in t.sort_by('row').to_pylist()])"
    )
    answered = run(client_venv / "bin/python", "-c", read, cwd=tmp_path).stdout.strip()
    assert answered == "[('a', 'positive', None), ('b', 'negative', None), ('c', None, 'text')]", answered
