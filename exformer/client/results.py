"""Typed results that ARE the response: a `dict` subclass holding exactly the JSON the server
sent (so `r["tokens"]`, `json.dumps(r)`, pydantic validation… work as on the plain dict), with
properties that decode the arrays into numpy and hooks that draw them in a notebook.

The same objects come from a local call (`exformer.explain_attention`) and from a server
(`exformer.Client`), so notebook code does not care where the model ran.

>>> import numpy as np
>>> r = AttentionResult({"tokens": [{"text": "a"}], "attention": {"layers": [0], "heads": [0],
...     "encoding": "json", "shape": [1, 1, 1, 1], "data": [[[[1.0]]]]}})
>>> r.attention.shape, r.attention.dtype, r["tokens"][0]["text"]
((1, 1, 1, 1), dtype('float32'), 'a')
"""

import io
from functools import cached_property
from pathlib import Path

import numpy as np
import orjson

from ..contract.arrays import decode_maps, decode_rows
from ..contract.responses import relative_delta


class _Result(dict):
    """A response dict with decoding properties; the views draw it (exformer.client.views)."""

    kind: str  # "attention" | "gradients": what exformer.client.views draws

    def _repr_html_(self) -> str | None:
        """Jupyter draws the result inline (None, so the text repr is used, without views)."""
        if "targets" in self:  # a continuation: the visualizer's Generation view is not in the notebook views yet
            return None
        try:
            from . import views
        except ImportError:
            return None
        return views.notebook(self.kind, self)

    def save_html(self, path) -> Path:
        """One self-contained HTML file with the same view, to share or open later."""
        from . import views

        path = Path(path)
        path.write_text(views.document(self.kind, self), encoding="utf-8")
        return path

    @property
    def model(self) -> dict:
        """The served model's details (name, type, layers, heads, labels…)."""
        return self["model"]

    @property
    def tokens(self) -> list[dict]:
        """One row per token: text, id, offsets, surface, special…"""
        return self["tokens"]

    @property
    def prediction(self) -> dict | None:
        """Classifier: label and probabilities; gradients of a causal LM: the next tokens."""
        return self.get("prediction")

    @property
    def truncated(self) -> bool:
        """Whether the input was cut to the model's max_tokens."""
        return bool(self.get("truncated", False))

    def _need(self, key: str, hint: str):
        if key not in self:
            raise AttributeError(f"this response has no {key!r}; {hint}")
        return self[key]

    def __repr__(self) -> str:  # the whole dict can be megabytes of numbers
        parts = [f"model={self['model']['name']!r}"] if "model" in self else []
        if "tokens" in self:
            parts.append(f"tokens={len(self['tokens'])}")
        return f"{type(self).__name__}({', '.join(parts + self._repr_parts())})"

    def _repr_parts(self) -> list[str]:
        return []


class AttentionResult(_Result):
    """An attention response. `.attention` is numpy float32 [layers, heads, T, T], whichever
    encoding the server used; `attention[l, h, i, j]` is how much token i attends to token j
    in the `l`-th returned layer (`.layers[l]`) and head (`.heads[h]`; with heads "mean"/"max"
    the head axis has size 1 and `.aggregate` says which). `.rollout` is [layers, T, T].
    Sparse answers (`top_k_per_row`) decode dense with zeros where nothing was sent;
    `.attention_rows` / `.rollout_rows` give the values, columns, kept and rest as sent."""

    kind = "attention"

    def _block(self, key: str) -> dict:
        hint = (
            "an empty request returns the model's details only"
            if "tokens" not in self
            else ('it was asked with "rollout": "only"' if key == "attention" else "ask for it with rollout=True")
        )
        return self._need(key, hint)

    @cached_property
    def attention(self) -> np.ndarray:
        return decode_maps(self._block("attention"))

    @cached_property
    def rollout(self) -> np.ndarray:
        """Attention rollout [layers, T, T]: how much input token j reaches token i after layer `.layers[l]`."""
        return decode_maps(self._block("rollout"))

    @cached_property
    def attention_rows(self) -> dict[str, np.ndarray]:
        """A sparse attention as sent: values, columns [L, H, T, k], kept, rest [L, H, T]."""
        return self._rows("attention")

    @cached_property
    def rollout_rows(self) -> dict[str, np.ndarray]:
        """A sparse rollout as sent: values, columns [L, T, k], kept, rest [L, T]."""
        return self._rows("rollout")

    def _rows(self, key: str) -> dict[str, np.ndarray]:
        block = self._block(key)
        if block["encoding"] != "topk-per-row":
            raise AttributeError(f"this {key} is dense ({block['encoding']}); ask with top_k_per_row for rows")
        return decode_rows(block)

    @property
    def layers(self) -> list[int]:
        """The model's layer index of each returned layer (attention and rollout alike)."""
        return (self.get("attention") or self._block("rollout"))["layers"]

    @property
    def heads(self) -> list[int]:
        return self._block("attention")["heads"]

    @property
    def aggregate(self) -> str | None:
        """ "mean" | "max" when the heads were aggregated, else None."""
        return self._block("attention").get("aggregate")

    def _repr_parts(self) -> list[str]:
        parts = []
        for key in ("attention", "rollout"):
            block = self.get(key)
            if block:
                parts.append(f"{key}={block['shape']} {block['encoding']}")
        return parts


_ASK = "ask for it in `return` (Python: returns=[...])"


class GradientsResult(_Result):
    """A gradients response: the JSON summary as a dict, its per-token and per-step numbers as
    numpy, and with `tensors=True` (format npz) every full tensor in `.tensors`."""

    kind = "gradients"

    def __init__(self, summary=(), /, tensors: dict[str, np.ndarray] | None = None, **fields):
        super().__init__(summary, **fields)
        self._tensors = tensors

    @classmethod
    def from_npz(cls, source) -> "GradientsResult":
        """An npz answer (bytes, a path or a file): the summary with the arrays beside it.
        Read with numpy alone (no pickle). `integrated_gradients` loses the old server's
        leading axis of 1: [T, E]."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = io.BytesIO(source)
        with np.load(source, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        summary = orjson.loads(str(arrays.pop("summary")))
        if "integrated_gradients" in arrays:
            arrays["integrated_gradients"] = arrays["integrated_gradients"][0]
        return cls(summary, tensors=arrays)

    @property
    def tensors(self) -> dict[str, np.ndarray]:
        """integrated_gradients [T, E], intermediate_gradients and intermediates [n, T, E],
        step_sizes, path_scores, alphas, gradient_norms, attributions [T]."""
        tensors = getattr(self, "_tensors", None)
        if tensors is None:
            raise AttributeError(
                "this is the JSON summary; the full tensors come with tensors=True "
                '(client) or format="npz" (the npz answer)'
            )
        return tensors

    @cached_property
    def attributions(self) -> np.ndarray:
        """Per token: the integrated gradients summed over the hidden size [T]."""
        return np.asarray(self._need("attributions", _ASK)["raw"])

    @cached_property
    def normalized(self) -> np.ndarray:
        """`attributions` divided by their L2 norm [T]."""
        return np.asarray(self._need("attributions", _ASK)["normalized"])

    @property
    def target(self) -> dict:
        """What was attributed (index, label or token) and its score F(x)."""
        return self["target"]

    @property
    def targets(self) -> list[dict]:
        """A continuation's answer: one entry per target token (its probability, alternatives,
        score and attribution row over the tokens before it)."""
        return self._need("targets", 'only a request with "continuation" or "generate" has targets')

    @cached_property
    def rows(self) -> np.ndarray:
        """A continuation's attributions as a matrix [targets, tokens]: row t holds the values
        of the tokens before target t and NaN from its own position on."""
        targets, n = self.targets, len(self["tokens"])
        matrix = np.full((len(targets), n), np.nan)
        for i, target in enumerate(targets):
            raw = target.get("attributions")
            if raw is None:
                raise AttributeError(f"this response has no attributions; {_ASK}")
            matrix[i, : len(raw["raw"])] = raw["raw"]
        return matrix

    @property
    def convergence_delta(self) -> float:
        """Σ attributions − (F(x) − F(x′)): the quadrature's error, in F's units."""
        return self["convergence_delta"]

    @property
    def relative_delta(self) -> float | None:
        """|convergence_delta| / |F(x) − F(x′)|: the error relative to what is explained
        (None when the input and the baseline score the same: nothing to explain, or for a method
        without a baseline: saliency, attnlrp)."""
        baseline = self["baseline"]
        return relative_delta(self["convergence_delta"], self["target"]["score"], baseline and baseline["score"])

    @cached_property
    def path_scores(self) -> np.ndarray:
        """F at each path point [n]."""
        return np.asarray(self._need("path_scores", _ASK))

    @cached_property
    def alphas(self) -> np.ndarray:
        """Where each path point lies between the baseline (0) and the input (1) [n]."""
        return np.asarray(self._need("alphas", _ASK))

    @cached_property
    def step_sizes(self) -> np.ndarray:
        """The quadrature weight of each path point [n]."""
        return np.asarray(self._need("step_sizes", _ASK))

    def _repr_parts(self) -> list[str]:
        parts = []
        if "target" in self:
            target = self["target"]
            parts.append(f"target={target.get('label') or target.get('text')!r}")
        if "targets" in self:
            parts.append(f"continuation={self.get('continuation')!r} targets={len(self['targets'])}")
        if self.get("convergence_delta") is not None:
            parts.append(f"convergence_delta={self['convergence_delta']:.3g}")
        if (tensors := getattr(self, "_tensors", None)) is not None:
            parts.append(f"tensors={sorted(tensors)}")
        return parts


__all__ = ["AttentionResult", "GradientsResult"]
