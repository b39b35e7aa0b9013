"""exformer.client.views: the visualizer's views of one response as self-contained HTML.

Real responses are computed in-process (the default models in build/models, or tiny random
ones where those are missing), written with `document(...)` and opened in a real Chromium
(frontend/e2e/standalone.mjs, playwright-core) with every request blocked: the attention
curves are drawn and a head toggle changes them, the model overview is drawn, the same
response embedded as "json" draws the same, the attribution shades the tokens and charts the
path, and several `notebook(...)` outputs on one page each render in their own iframe.
Screenshots land in tests/artifacts/screenshots/standalone-*.png.
"""

import base64
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import orjson
import pytest

from exformer import explain_attention, explain_gradients, load_model
from exformer.client import views

ROOT = Path(__file__).resolve().parent.parent
from browser import ARTIFACTS, CHROMIUM, FRONTEND, require  # noqa: E402

MODELS = ROOT / "build" / "models"
DATA_SCRIPT = re.compile(r'<script type="application/json" id="exformer-data">(.*?)</script>', re.S)
HOSTILE = 'x</script><script>document.title="pwned"</script><!--<b>bold</b>'


@pytest.fixture(scope="module", autouse=True)
def built():
    if not (views.STATIC / views.SCRIPT).is_file():
        pytest.fail("exformer/_static is not built (bin/setup, or cd frontend && npm run build:standalone)")


@pytest.fixture(scope="module")
def attention_response(tiny_model_dir):
    """minilm's attention of ~20 tokens (a tiny random BERT where build/models lacks it)."""
    path = MODELS / "minilm"
    model = load_model(path if (path / "config.json").is_file() else tiny_model_dir("bert"))
    return explain_attention(model, "The quick brown fox jumps over the lazy dog while the cat sleeps on a warm mat.")


@pytest.fixture(scope="module")
def gradients_response(tiny_model_dir):
    """The sentiment classifier's integrated gradients (a tiny random BERT classifier else)."""
    path = MODELS / "sentiment"
    model = load_model(path if (path / "config.json").is_file() else tiny_model_dir("bert", classifier=True))
    return explain_gradients(model, "A gripping, beautifully acted film.", n_steps=16)


def embedded(document: str) -> dict:
    (data,) = DATA_SCRIPT.findall(document)
    return json.loads(data)


def decode_float16(attention: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(attention["data"]), dtype="<f2").reshape(attention["shape"])


# --- the document --------------------------------------------------------------------------------


def test_document_inlines_the_views_and_the_response(attention_response):
    doc = views.document("attention", attention_response)
    assert doc.startswith("<!doctype html>") and doc.rstrip().endswith("</html>")
    script, style = (views.STATIC / views.SCRIPT).read_text(), (views.STATIC / views.STYLESHEET).read_text()
    assert script.strip() in doc and style.strip() in doc
    # Nothing to fetch: no src/href to anywhere, and a policy that refuses any request.
    assert not re.search(r"""\b(src|href)\s*=\s*["']?(https?:|//)""", doc)
    assert "default-src 'none'" in doc
    assert "fetch(" not in script and "XMLHttpRequest" not in script
    payload = embedded(doc)
    assert payload["kind"] == "attention"
    response = payload["response"]
    assert response["tokens"] == json.loads(orjson.dumps(attention_response["tokens"]))
    assert f"<title>exformer · attention · {response['model']['name']}</title>" in doc


def test_json_attention_is_embedded_as_float16_base64(attention_response):
    assert attention_response["attention"]["encoding"] == "json"  # a numpy array, as explain_attention gives it
    attention = embedded(views.document("attention", attention_response))["response"]["attention"]
    assert attention["encoding"] == "float16-base64" and attention["dtype"] == "float16"
    assert attention["byteorder"] == "little"
    assert attention["layers"] == attention_response["attention"]["layers"]
    original = np.asarray(attention_response["attention"]["data"])
    assert np.allclose(decode_float16(attention), original, atol=5e-4)
    # Nested lists (what the server's JSON decodes to) convert the same.
    as_lists = {**attention_response, "attention": {**attention_response["attention"], "data": original.tolist()}}
    assert embedded(views.document("attention", as_lists))["response"]["attention"] == attention
    # float16-base64 from the server stays as it is.
    assert (
        views.embedded_response("attention", {**attention_response, "attention": attention})["attention"] == attention
    )


def test_huge_attention_stays_small(attention_response):
    """6 layers × 12 heads × 128² as json: ~17 MB of JSON text; embedded as float16: ~3 MB."""
    rng = np.random.default_rng(0)
    weights = rng.random((6, 12, 128, 128), dtype=np.float32)
    weights /= weights.sum(-1, keepdims=True)
    tokens = [{**attention_response["tokens"][1], "index": i} for i in range(128)]
    huge = {
        **attention_response,
        "tokens": tokens,
        "attention": {
            "encoding": "json",
            "shape": [6, 12, 128, 128],
            "layers": list(range(6)),
            "heads": list(range(12)),
            "data": weights,
        },
    }
    as_json = len(orjson.dumps(huge, option=orjson.OPT_SERIALIZE_NUMPY))
    size = len(views.document("attention", huge).encode())
    assert size < 3_300_000 < as_json / 4, (size, as_json)
    assert np.allclose(
        decode_float16(embedded(views.document("attention", huge))["response"]["attention"]), weights, atol=5e-4
    )


def test_gradients_embed_the_summary_without_per_step_tensors(gradients_response, tiny_model_dir):
    doc = views.document("gradients", gradients_response)
    response = embedded(doc)["response"]
    for name in ("raw", "normalized"):
        assert response["attributions"][name] == pytest.approx(gradients_response["attributions"][name])
    assert len(response["alphas"]) == len(response["path_scores"]) == 16
    # Per-step tensors (numpy, [n_steps, tokens, hidden]) are left out; an npz answer shows its summary.
    with_tensors = {
        **gradients_response,
        "intermediate_gradients": {"encoding": "json", "shape": [16, 3, 4], "data": np.zeros((16, 3, 4), np.float32)},
    }
    assert "intermediate_gradients" not in views.embedded_response("gradients", with_tensors)
    npz = {"attributions": np.zeros(3), "summary": dict(gradients_response)}
    assert views.embedded_response("gradients", npz)["target"] == gradients_response["target"]


def test_bad_input_is_refused_clearly(attention_response, gradients_response):
    with pytest.raises(ValueError, match="kind must be one of attention, gradients"):
        views.document("heatmap", attention_response)
    with pytest.raises(ValueError, match="needs an attention response"):
        views.document("attention", {"model": attention_response["model"]})
    with pytest.raises(ValueError, match="JSON summary"):
        views.document("gradients", {"attributions": np.zeros(3)})
    with pytest.raises(TypeError, match="must be a dict"):
        views.document("gradients", [gradients_response])


def test_a_missing_build_names_what_to_run(attention_response, monkeypatch, tmp_path):
    monkeypatch.setattr(views, "STATIC", tmp_path)
    with pytest.raises(views.ViewsNotBuilt, match=r"bin/setup.*npm run build:standalone"):
        views.document("attention", attention_response)
    with pytest.raises(FileNotFoundError):
        views.notebook("attention", attention_response)


# --- no data can break out ------------------------------------------------------------------------


def hostile(response: dict) -> dict:
    tokens = [dict(t) for t in response["tokens"]]
    tokens[1]["text"] = tokens[1]["surface"] = HOSTILE
    return {**response, "model": {**response["model"], "name": HOSTILE}, "tokens": tokens}


def test_no_script_end_tag_from_the_data_leaves_its_script(attention_response):
    doc = views.document("attention", hostile(attention_response))
    (data,) = DATA_SCRIPT.findall(doc)
    assert "<" not in data and ">" not in data  # \u003c: "</script" cannot occur in it
    assert embedded(doc)["response"]["model"]["name"] == HOSTILE
    assert embedded(doc)["response"]["tokens"][1]["text"] == HOSTILE
    assert doc.lower().count("<script") == 2 and doc.lower().count("</script") == 2
    assert "&lt;/script&gt;" in doc.split("</title>")[0]  # the title is escaped too


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.iframes, self.scripts = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "iframe":
            self.iframes.append(dict(attrs))

    def handle_data(self, data):
        if self.tags and self.tags[-1] == "script":
            self.scripts.append(data)


def test_notebook_wraps_the_document_in_an_iframe_srcdoc(attention_response, gradients_response):
    out = views.notebook("attention", hostile(attention_response))
    parsed = Tags()
    parsed.feed(out)
    assert parsed.tags == ["iframe", "script"]  # nothing of the data became a tag of the notebook
    (frame,) = parsed.iframes
    assert frame["srcdoc"] == views.document("attention", hostile(attention_response))
    assert frame["sandbox"] == "allow-scripts"
    assert re.search(r"width: 100%; height: \d+px", frame["style"])
    # In the attribute the document is HTML-escaped whole: not one "<" or quote of it is raw.
    raw = out[out.index('srcdoc="') + 8 : out.index('" style=')]
    assert "<" not in raw and '"' not in raw and html.unescape(raw) == frame["srcdoc"]
    assert frame["id"] in parsed.scripts[0] and "exformer:height" in parsed.scripts[0]
    # Several outputs on one page: their own ids.
    other = views.notebook("gradients", gradients_response)
    assert re.search(r'id="(exformer-[0-9a-f]+)"', other).group(1) != frame["id"]


# --- in Chromium, offline ---------------------------------------------------------------------------


@pytest.mark.browser
def test_the_saved_views_render_offline_in_chromium(attention_response, gradients_response, tmp_path):
    require()
    pages = {
        "attention": views.document("attention", attention_response),
        "gradients": views.document("gradients", gradients_response),
    }
    # The same response embedded as "json" nested lists (as the server may answer), and a
    # model name that tries to close the script: drawn as text.
    as_json = hostile(attention_response)
    as_json["attention"] = {**as_json["attention"], "data": np.asarray(as_json["attention"]["data"]).tolist()}
    data = orjson.dumps({"kind": "attention", "response": as_json}).decode()
    data = data.replace("<", "\\u003c").replace(">", "\\u003e")
    pages["attention-json"] = DATA_SCRIPT.sub(
        lambda _: f'<script type="application/json" id="exformer-data">{data}</script>',
        views.document("attention", as_json),
    )
    pages["notebook"] = (
        "<!doctype html><html><head><meta charset='utf-8'><title>notebook</title></head><body>"
        "<h2>attention</h2>"
        + views.notebook("attention", attention_response)
        + "<h2>gradients</h2>"
        + views.notebook("gradients", gradients_response)
        + "</body></html>"
    )
    args = []
    for name, text in pages.items():
        path = tmp_path / f"{name}.html"
        path.write_text(text, encoding="utf-8")
        args += [f"--{name}", str(path)]
    saved = ARTIFACTS / "views"
    saved.mkdir(parents=True, exist_ok=True)
    for name in ("attention", "gradients"):
        shutil.copy(tmp_path / f"{name}.html", saved / f"{name}.html")  # to open by hand
    result = subprocess.run(
        ["node", "e2e/standalone.mjs", *args, "--screenshots", str(ARTIFACTS / "screenshots"), "--chromium", CHROMIUM],
        cwd=FRONTEND,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    (ARTIFACTS / "standalone-e2e.log").write_text(output)
    print(output)
    print(f"attention page: {len(pages['attention'].encode())} bytes for {len(attention_response['tokens'])} tokens")
    assert result.returncode == 0, output
    assert "standalone e2e: all steps passed" in output
