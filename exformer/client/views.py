"""The visualizer's own views of one response, as self-contained HTML: no server to look.

>>> from exformer import load_model, explain_attention
>>> from exformer.client.views import document, notebook
>>> html = document("attention", explain_attention(load_model("build/models/minilm"), "The cat sat."))
>>> with open("view.html", "w", encoding="utf-8") as f:  # opens offline, in any browser
...     _ = f.write(html)

`document(kind, response)` is a whole HTML page: the standalone build of frontend/
(`src/standalone.ts`: the attention curves with head toggles and the model overview, or the
attribution shading with the path chart; the same view modules as the served app) inlined as
one script and one stylesheet, with the response inlined as JSON. `notebook(kind, response)`
is that page inside an `<iframe srcdoc=…>`, for Jupyter's `_repr_html_`: each output its own
document, so several on one page never share ids, styles or state.

The script and stylesheet are read from `exformer/client/_static/`, built by bin/setup
(`cd frontend && npm run build:standalone`).

What is embedded is the response as the views need it, kept small:

- attention given as "json" (nested lists or a numpy array, as `explain_attention` returns
  it) is converted to "float16-base64", as the app itself asks the server for it: about six
  times smaller (6 layers × 12 heads × 128² tokens: ~3 MB instead of ~17 MB of JSON text),
  and float16 is far finer than what the eye can tell in a curve's opacity;
- a gradients response's per-step tensors (`intermediate_gradients`, `intermediates`:
  [n_steps, tokens, hidden]) are left out: no view draws them. An "npz" answer
  (`explain_gradients(..., format="npz")`) is shown from its JSON `summary`.
"""

from __future__ import annotations

import base64
import html
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

__all__ = ["document", "notebook", "embedded_response", "STATIC", "KINDS"]

STATIC = Path(__file__).resolve().parent / "_static"
SCRIPT = "exformer-views.js"
STYLESHEET = "exformer-views.css"
KINDS = ("attention", "gradients")
# Per-step tensors no view draws: left out of the page.
UNDRAWN = ("intermediate_gradients", "intermediates")

# The notebook iframe: a first height from the response, then the page's own (it posts its
# scrollHeight to the notebook), never more than this.
MAX_FRAME_HEIGHT = 1100


class ViewsNotBuilt(FileNotFoundError):
    """exformer/client/_static/ lacks the standalone visualizer (a checkout where bin/setup has not run)."""


def _assets() -> tuple[str, str]:
    """(script, stylesheet) of the standalone build."""
    missing = [name for name in (SCRIPT, STYLESHEET) if not (STATIC / name).is_file()]
    if missing:
        raise ViewsNotBuilt(
            f"the standalone visualizer is not built ({', '.join(missing)} missing in {STATIC}): "
            "run bin/setup, or `cd frontend && npm ci && npm run build:standalone`"
        )
    return (STATIC / SCRIPT).read_text(encoding="utf-8"), (STATIC / STYLESHEET).read_text(encoding="utf-8")


def _plain(response: Any) -> dict:
    """A response as a dict: a dict as is (copied), a pydantic model dumped."""
    if hasattr(response, "model_dump"):
        response = response.model_dump(by_alias=True, exclude_none=False)
    if not isinstance(response, Mapping):
        raise TypeError(
            f"a response must be a dict (what explain_* and the server answer), got {type(response).__name__}"
        )
    return dict(response)


def _float16_attention(attention: Mapping) -> dict:
    """The attention block with its values as little-endian float16, base64 ("float16-base64")."""
    attention = dict(attention)
    if attention.get("encoding") == "float16-base64":
        return attention
    if attention.get("encoding") not in (None, "json"):
        raise ValueError(f"unknown attention encoding {attention.get('encoding')!r}: expected json or float16-base64")
    values = np.asarray(attention["data"], dtype=np.float32)
    shape = list(attention.get("shape") or values.shape)
    if list(values.shape) != shape:
        raise ValueError(f"attention data of shape {list(values.shape)} does not match its shape field {shape}")
    raw = np.ascontiguousarray(values, dtype="<f2").tobytes()
    attention.update(
        encoding="float16-base64",
        dtype="float16",
        byteorder="little",
        shape=shape,
        data=base64.b64encode(raw).decode("ascii"),
    )
    return attention


def embedded_response(kind: str, response: Any) -> dict:
    """The response as embedded in the page: attention as float16-base64, no per-step tensors."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    out = _plain(response)
    if kind == "attention":
        if "attention" not in out or "tokens" not in out:
            raise ValueError(
                "an attention view needs an attention response (tokens and attention); "
                "a details-only answer (an empty request) has nothing to draw"
            )
        out["attention"] = _float16_attention(_plain(out["attention"]))
    else:
        if "tokens" not in out and isinstance(out.get("summary"), Mapping):
            out = dict(out["summary"])  # an "npz" answer: its JSON summary
        if "tokens" not in out or "target" not in out:
            raise ValueError(
                "a gradients view needs the JSON summary of a gradients response "
                '(format "json", or the "summary" of an "npz" answer)'
            )
        for name in UNDRAWN:
            out.pop(name, None)
    return out


def _default(value: Any) -> Any:
    """What orjson cannot write itself: tensors and other array-likes, numpy scalars of odd types."""
    if hasattr(value, "__array__") or isinstance(value, np.generic):
        return np.asarray(value).tolist()
    raise TypeError(f"cannot embed a {type(value).__name__} in the page")


# In a <script> element only "</script" (and "<!--") can end or confuse it; in JSON a "<" is
# always inside a string, where \u003c reads back the same. ">" and "&" likewise, for good
# measure, and the two line separators some parsers once took for line ends.
_JSON_ESCAPES = {
    b"<": b"\\u003c",
    b">": b"\\u003e",
    b"&": b"\\u0026",
    "\u2028".encode(): b"\\u2028",
    "\u2029".encode(): b"\\u2029",
}
_JSON_UNSAFE = re.compile(b"|".join(re.escape(k) for k in _JSON_ESCAPES))


def payload_json(kind: str, response: Any) -> str:
    """`{"kind": …, "response": …}` as JSON safe inside a `<script>` element (no "<" at all)."""
    data = orjson.dumps(
        {"kind": kind, "response": embedded_response(kind, response)},
        default=_default,
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
    )
    return _JSON_UNSAFE.sub(lambda m: _JSON_ESCAPES[m.group(0)], data).decode("utf-8")


def _inline_script(js: str) -> str:
    # A minified bundle holds neither, but a "</script" in a string would end the element early.
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.I).replace("<!--", "\\x3C!--")


def _inline_style(css: str) -> str:
    return re.sub(r"</(style)", r"<\\/\1", css, flags=re.I)


# Nothing leaves the page: no request of any kind, only its own inline script and style.
_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:"


def document(kind: str, response: Any) -> str:
    """A complete, self-contained HTML document showing `response` with the visualizer's views.

    kind "attention": the attention curves (layer, head toggles, mean/max, hover, each token's
    predictions) and the model overview; kind "gradients": the attribution shading, the
    prediction, the convergence check and the path chart. `response` is what
    `explain_attention` / `explain_gradients` or the server answer (a dict; numpy arrays are
    fine). Attention sent as "json" is embedded as "float16-base64" (see the module's
    docstring), so a saved file stays small. Opens offline: it makes no request at all.

    Raises ViewsNotBuilt (a FileNotFoundError) when exformer/client/_static/ has not been built.
    """
    script, style = _assets()
    data = payload_json(kind, response)
    model = _plain(response).get("model") or {}
    name = model.get("name") if isinstance(model, Mapping) else None
    title = html.escape(f"exformer · {kind}" + (f" · {name}" if name else ""))
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n"
        f"<style>\n{_inline_style(style)}\n</style>\n"
        "</head>\n<body>\n"
        f'<script type="application/json" id="exformer-data">{data}</script>\n'
        f"<script>\n{_inline_script(script)}\n</script>\n"
        "</body>\n</html>\n"
    )


def frame_height(kind: str, response: Any) -> int:
    """A first height for the notebook's iframe (px), before the page reports its own."""
    n = len(_plain(response).get("tokens") or ())
    if kind == "attention":
        return min(MAX_FRAME_HEIGHT, 250 + min(720, 40 + 20 * n))
    return 720


def notebook(kind: str, response: Any) -> str:
    """HTML for Jupyter's `_repr_html_`: `document(kind, response)` in an `<iframe srcdoc>`.

    Each output is a document of its own (no clash of ids, styles or state between outputs on
    one page), sandboxed to its scripts. It starts at a height estimated from the response and
    takes the page's own height when the page reports it (a small script beside the iframe
    listens for that message from this iframe only; where outputs' scripts do not run, the
    estimate stays and the page scrolls inside).
    """
    doc = document(kind, response)
    frame = f"exformer-{uuid.uuid4().hex[:12]}"
    height = frame_height(kind, response)
    return (
        f'<iframe id="{frame}" class="exformer-view" title="exformer {html.escape(kind)} view" '
        f'sandbox="allow-scripts" srcdoc="{html.escape(doc, quote=True)}" '
        f'style="width: 100%; height: {height}px; border: 1px solid #e3e6eb; border-radius: 8px;"></iframe>\n'
        "<script>(function () {\n"
        f'  var frame = document.getElementById("{frame}");\n'
        '  window.addEventListener("message", function (e) {\n'
        '    if (!frame || e.source !== frame.contentWindow || !e.data || e.data.type !== "exformer:height") return;\n'
        f"    var height = Math.min(Math.max(Number(e.data.height) || 0, 120) + 4, {MAX_FRAME_HEIGHT});\n"
        '    frame.style.height = height + "px";\n'
        '    frame.setAttribute("data-sized", String(height));\n'
        "  });\n"
        "  // The page may have told its height before this ran: ask it (again once it loads).\n"
        "  function ask() { if (frame && frame.contentWindow) "
        'frame.contentWindow.postMessage({ type: "exformer:height?" }, "*"); }\n'
        '  if (frame) frame.addEventListener("load", ask);\n'
        "  ask();\n"
        "})();</script>"
    )
