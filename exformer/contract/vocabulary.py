"""The contract's names: every enumerated value a request may carry, and the defaults that
depend on nothing but the request. One place, so the core, the CLI and the schema agree."""

from typing import Annotated, Literal, get_args

from pydantic import Field

Encoding = Literal["json", "float16-base64"]
Baseline = Literal["zero", "pad", "unk", "mask", "period", "rand-norm", "rand-unif"]
Method = Literal[
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",  # captum's
    "fejer",
    "gausskronrod",
]  # nested, for n_steps "auto" (fejer its default): exformer.core.adaptive
Format = Literal["json", "npz", "torch-gzip"]
Returned = Literal["attributions", "intermediate_gradients", "step_sizes", "intermediates", "path_scores"]
Score = Literal["probability", "logit", "log_probability"]
Aggregate = Literal["token", "word", "sentence"]
# The methods by name (exformer.explain.methods registers a class for each)
GradientAttribution = Literal["integrated_gradients", "gradient_x_input", "saliency", "attnlrp"]  # any target
ForwardAttribution = Literal["occlusion", "contextcite"]  # forward-only: continuations only
Attribution = Literal[GradientAttribution, ForwardAttribution]
GRADIENT_ATTRIBUTIONS = get_args(GradientAttribution)
FORWARD_ATTRIBUTIONS = get_args(ForwardAttribution)
# The request fields that only some methods read, by method (their field names); any other method
# given one refuses it, naming it. The rest (text, messages, sources, continuation, generate,
# target, dry_run, evaluate, ...) every method reads.
_BASELINE = frozenset({"baseline", "baseline_specials", "seed"})
METHOD_OPTIONS = {
    "integrated_gradients": _BASELINE
    | {
        "n_steps",
        "method",
        "tolerance",
        "max_n_steps",
        "returns",
        "format",
        "continuation_baseline",
        "foil",
        "dtype",
        "score",
        "rows",
    },
    "gradient_x_input": _BASELINE | {"continuation_baseline", "foil", "dtype", "score", "rows"},
    "saliency": frozenset({"foil", "dtype", "score", "rows"}),
    "attnlrp": frozenset({"continuation_baseline", "foil", "dtype", "score", "rows"}),
    "occlusion": _BASELINE | {"unit", "ablation", "score"},
    "contextcite": _BASELINE | {"unit", "ablation", "n_ablations", "keep_probability", "n_holdout"},
}
METHOD_SPECIFIC = frozenset().union(*METHOD_OPTIONS.values())
Unit = Literal["token", "word", "sentence", "source"]  # what a forward-only method leaves out
Ablation = Literal["remove", "baseline"]  # a unit left out of the text, or its tokens replaced by the baseline token
Role = Literal["system", "user", "assistant"]

BASELINES, GRADIENT_METHODS = get_args(Baseline), get_args(Method)
FIXED_METHODS = GRADIENT_METHODS[:-2]  # captum's: a given number of points
NESTED_METHODS = GRADIENT_METHODS[-2:]  # refine reusing their points: what n_steps "auto" runs
DEFAULT_TOLERANCE = 0.01
TOKEN_BASELINES = ("pad", "unk", "mask", "period")  # one token id at every replaced position
DEFAULT_RETURNS = {
    "json": ("attributions", "step_sizes", "path_scores"),  # the summary: small
    "npz": get_args(Returned),
    "torch-gzip": ("attributions", "intermediate_gradients", "step_sizes", "intermediates"),  # old keys
}
GRADIENT_HEADS = ("sequence-classification", "causal-lm")
Index = Annotated[int, Field(ge=0)]
HeadAggregate = Literal["mean", "max"]
HEAD_AGGREGATES = get_args(HeadAggregate)
SCORES, FORMATS, RETURNS = get_args(Score), get_args(Format), get_args(Returned)
DEFAULT_ABLATIONS, DEFAULT_HOLDOUT, DEFAULT_KEEP_PROBABILITY = 64, 16, 0.5  # ContextCite's 64 and ½
KRONROD_POINTS = 15  # one Gauss–Kronrod G7/K15 rule: the fewest points n_steps "auto" can use
# Fixed limits of the contract (those that depend on the archive are its settings: exformer.contract.settings).
MAX_MESSAGES = 256  # turns of a conversation
MAX_SOURCES = 256  # named spans of a prompt
MAX_INDICES = 8192  # entries of an index list: layers, heads, mask, foil (the longest prompt an archive may serve)

__all__ = [
    "BASELINES",
    "GRADIENT_METHODS",
    "SCORES",
    "FORMATS",
    "RETURNS",
    "Encoding",
    "Baseline",
    "Method",
    "Format",
    "Returned",
    "Score",
    "Aggregate",
    "Attribution",
    "FORWARD_ATTRIBUTIONS",
    "ForwardAttribution",
    "GradientAttribution",
    "GRADIENT_ATTRIBUTIONS",
    "METHOD_OPTIONS",
    "METHOD_SPECIFIC",
    "Unit",
    "Ablation",
    "Role",
    "DEFAULT_ABLATIONS",
    "DEFAULT_HOLDOUT",
    "DEFAULT_KEEP_PROBABILITY",
    "FIXED_METHODS",
    "NESTED_METHODS",
    "DEFAULT_TOLERANCE",
    "TOKEN_BASELINES",
    "DEFAULT_RETURNS",
    "GRADIENT_HEADS",
    "Index",
    "HeadAggregate",
    "HEAD_AGGREGATES",
    "KRONROD_POINTS",
    "MAX_MESSAGES",
    "MAX_SOURCES",
    "MAX_INDICES",
]
