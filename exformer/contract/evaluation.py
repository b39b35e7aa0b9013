"""`evaluate`: how faithful an explanation is, measured on the input itself (exformer.core.evaluate).

The request's `evaluate` block asks for it; the answer's `evaluation` block holds, per row (a
classifier's target, each target token of a continuation, the whole continuation), the deletion
and insertion curves of the explanation's order, their areas (AOPC), ERASER's
comprehensiveness and sufficiency, the same four numbers over random orders, and the win rates.

Its own base classes (the same configuration as requests.py's and responses.py's), so that
those modules can import these models without a cycle.

>>> Evaluate.model_validate({"steps": 5}).random_orders
10
>>> Evaluate.model_validate({"top_fraction": 1}).top_fraction
1.0
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .vocabulary import Ablation, Baseline, Unit

DEFAULT_STEPS, DEFAULT_RANDOM_ORDERS, DEFAULT_TOP_FRACTION = 10, 10, 0.2
MAX_STEPS, MAX_RANDOM_ORDERS, MAX_SEED = 100, 100, 2**32 - 1


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- request ------------------------------------------------------------------------------------


class Evaluate(_Request):
    """`evaluate`: measure the explanation's faithfulness by removing its units in its order
    (deletion), adding them back (insertion) and against random orders of the same units."""

    unit: Unit | None = Field(
        None,
        description="What is removed: token, word, sentence or source (default: the method's own unit; "
        "token for gradient methods). A gradient method's token values are summed per unit.",
    )
    steps: int = Field(
        DEFAULT_STEPS,
        ge=1,
        le=MAX_STEPS,
        description="Points of each curve after the first, at the fractions 1/steps, …, 1 of the units "
        "(rounded to unit counts; equal counts once).",
    )
    random_orders: int = Field(
        DEFAULT_RANDOM_ORDERS,
        ge=0,
        le=MAX_RANDOM_ORDERS,
        description="Random orders of the units the explanation is compared with (0: none).",
    )
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Random order k is numpy.random.default_rng((seed, k)).permutation(units)."
    )
    top_fraction: float = Field(
        DEFAULT_TOP_FRACTION,
        gt=0,
        le=1,
        description="ERASER's top k: this fraction of the units, rounded, at least one.",
    )


# --- response -----------------------------------------------------------------------------------


class Spread(_Response):
    mean: float = Field(description="Over the random orders.")
    std: float = Field(description="Population standard deviation over the random orders.")


class RandomOrders(_Response):
    """The four numbers over the random orders, and their mean curves."""

    deletion_aopc: Spread
    insertion_aopc: Spread
    comprehensiveness: Spread
    sufficiency: Spread
    deletion: list[float] = Field(description="The mean deletion curve, at `fractions`.")
    insertion: list[float] = Field(description="The mean insertion curve, at `fractions`.")
    deletion_std: list[float] = Field(
        description="The deletion curves' population standard deviation over the random "
        "orders, at `fractions` (a band around the mean curve)."
    )
    insertion_std: list[float] = Field(description="The same for the insertion curves.")


class WinRate(_Response):
    deletion: float | None = Field(
        description="Share of random orders whose deletion AOPC is below the explanation's (ties count half); "
        "null without random orders."
    )
    insertion: float | None = Field(description="The same for the insertion AOPC.")


class EvaluationRow(_Response):
    """One score F the explanation explains, measured on versions of the input."""

    target: int | None = Field(
        description="Which F: the position of the target token in `targets` (a continuation) or the class index "
        "(a classifier); null: the whole continuation."
    )
    deletion: list[float] = Field(
        description="F with the explanation's top j units removed, j = `counts` "
        "(the first point is F of the whole input)."
    )
    insertion: list[float] = Field(
        description="F with only the top j units kept (the first point: none kept, the last: the whole input)."
    )
    deletion_aopc: float = Field(description="Mean over the counts after 0 of F(x) − deletion; higher is better.")
    insertion_aopc: float = Field(
        description="Mean over the counts after 0 of insertion − F(nothing kept); higher is better."
    )
    comprehensiveness: float = Field(description="ERASER: F(x) − F(x without the top k units); higher is better.")
    sufficiency: float = Field(description="ERASER: F(x) − F(only the top k units kept); lower is better.")
    random: RandomOrders | None = Field(description="The same over random orders; null without random orders.")
    win_rate: WinRate


class Evaluation(_Response):
    """The answer's `evaluation` block."""

    unit: Unit = Field(description="What was removed.")
    ablation: Ablation = Field(
        description='"remove": the unit\'s text taken out and the input tokenized again; '
        '"baseline": its tokens replaced by the baseline token.'
    )
    baseline: Baseline | None = Field(description='ablation "baseline": the token that replaced them.')
    score: Literal["probability", "logit", "log_probability", "logit_probability"] = Field(
        description="F of the target rows (the whole continuation's row: log p(continuation), or "
        "its log p/(1−p) with logit_probability)."
    )
    n_units: int = Field(description="Units the input has.")
    steps: int
    counts: list[int] = Field(description="Units removed (deletion) or kept (insertion) at each curve point.")
    fractions: list[float] = Field(description="counts / n_units.")
    top_fraction: float
    top_k: int = Field(description="Units ERASER's comprehensiveness removes and sufficiency keeps.")
    random_orders: int
    seed: int
    rows: list[EvaluationRow]
    versions: int = Field(description="Distinct sets of removed units scored (shared by every row and order).")
    forwards: int = Field(description="Distinct inputs the model ran (sets that make the same input run once).")


__all__ = [
    "Evaluate",
    "Evaluation",
    "EvaluationRow",
    "RandomOrders",
    "Spread",
    "WinRate",
    "DEFAULT_STEPS",
    "DEFAULT_RANDOM_ORDERS",
    "DEFAULT_TOP_FRACTION",
    "MAX_STEPS",
    "MAX_RANDOM_ORDERS",
    "MAX_SEED",
]
