"""The documentation: the site builds strictly (a broken link, page or reference fails), its
generated tables hold every field and setting, and the examples marked `<!-- test: server -->`
(against the session's TorchServe) or `<!-- test: local -->` (in process) run as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXAMPLE = re.compile(r"<!-- test: (server|local) -->\s*```python\n(.*?)```", re.S)


def examples(kind: str) -> list:
    found = []
    for page in PAGES:
        for i, (tag, code) in enumerate(EXAMPLE.findall(page.read_text())):
            if tag == kind:
                found.append(pytest.param(code, id=f"{page.relative_to(ROOT)}#{i}"))
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [str(Path(sys.executable).with_name("mkdocs")), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def test_the_site_builds_strictly(site):
    assert (site / "index.html").is_file() and (site / "reference" / "index.html").is_file()


def test_the_field_tables_hold_every_field_of_the_schema(site):
    from exformer.contract import AttentionRequest, GradientsRequest

    page = (site / "api" / "contract" / "index.html").read_text()
    for model in (AttentionRequest, GradientsRequest):
        for name, field in model.model_fields.items():
            assert f"<code>{field.alias or name}</code>" in page, name


def test_the_settings_table_is_every_handler_setting(site):
    from exformer.contract.settings import Settings

    page = (site / "configuration" / "index.html").read_text()
    for name in Settings.model_fields:
        assert f"<code>{name}</code>" in page, name


def test_the_api_reference_is_generated_from_the_docstrings(site):
    page = (site / "reference" / "index.html").read_text()
    assert "explain_gradients" in page and "Client" in page and "RequestError" in page


def test_every_page_is_linked_in_the_navigation():
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    listed = set(re.findall(r"[\w/-]+\.md", str(nav)))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages == listed, pages ^ listed


@pytest.mark.parametrize("code", examples("server"))
def test_a_documented_server_example_runs(code, torchserve, tmp_path):
    code = code.replace("http://127.0.0.1:8080", torchserve.inference)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.parametrize("code", examples("local"))
def test_a_documented_local_example_runs(code, tmp_path):
    code = code.replace('"build/models/', f'"{ROOT}/build/models/')
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
