r"""How faithful an explanation is, measured on the input itself and against random orders.

An explanation gives each unit u of the input (a token, word, sentence or source) an
attribution a_u. It orders the n units, most important first: π = argsort(−a) (ties: the
earlier unit first), and S_j = {π_1, …, π_j} are its top j units. With F(x ∖ S) the target's
score on the input with the units S removed (the caller's `score`), U all units, and
J = {j_1 < … < j_m} the unit counts at the fractions 1/steps, …, 1 (j = ⌊n·i/steps + ½⌋,
deduplicated; j_m = n; the count 0 is the curves' first point and no step of the areas):

    deletion curve     D(j) = F(x ∖ S_j)                 D(0) = F(x)
    insertion curve    I(j) = F(x ∖ (U ∖ S_j))           I(0) = F(x ∖ U), nothing kept

    deletion AOPC      A_del = 1/m Σ_{j∈J} [F(x) − D(j)]      (higher: the top units mattered)
    insertion AOPC     A_ins = 1/m Σ_{j∈J} [I(j) − I(0)]      (higher: the top units suffice)

and ERASER's (DeYoung et al. 2020) at the top k = max(1, ⌊f·n + ½⌋) units, f = `top_fraction`:

    comprehensiveness  C = F(x) − F(x ∖ S_k)                   (higher is better)
    sufficiency        Σ = F(x) − F(x ∖ (U ∖ S_k))             (lower is better)

The same four numbers are computed for r random orders ρ_1 … ρ_r (order k is
`numpy.random.default_rng((seed, k)).permutation(n)`: reproducible by seed, any seed ≥ 0) and
reported as their mean and (population) standard deviation, with the explanation's win rate

    win_del = 1/r Σ_k [1(A_del(ρ_k) < A_del(π)) + ½·1(A_del(ρ_k) = A_del(π))]

(and win_ins alike): the share of random orders it beats, ties half. About a third of deletion
set-ups score worse than random in published comparisons, so a deletion curve alone says little.

Several rows (one per target token of a continuation and one for the whole answer; one for a
classifier) are evaluated at once: each row has its own attributions and so its own order,
the random orders are the same for every row, and every distinct set of removed units is
scored once, for every row, in one call of `score(removed) → [len(removed), rows]`.

A toy scorer, F = the sum of the kept units' weights, explained by its own weights:

>>> w = np.array([3.0, 1.0, 2.0, 0.0])
>>> def total(removed):  # F of every version: the weights of the units not removed
...     return np.array([[sum(w[u] for u in range(4) if u not in r)] for r in removed])
>>> result = evaluate(w[None, :], total, steps=2, random_orders=4, seed=0, top_fraction=0.25)
>>> result["counts"], result["top_k"]
([0, 2, 4], 1)
>>> row = result["rows"][0]
>>> row["deletion"], row["insertion"]   # order 0, 2, 1, 3: top two weigh 3 + 2
([6.0, 1.0, 0.0], [0.0, 5.0, 6.0])
>>> row["deletion_aopc"], row["insertion_aopc"]   # ((6−1) + (6−0))/2, ((5−0) + (6−0))/2
(5.5, 5.5)
>>> row["comprehensiveness"], row["sufficiency"]   # 6 − 3, 6 − 3
(3.0, 3.0)
>>> row["win_rate"]["deletion"] >= 0.5
True
"""

from collections.abc import Callable

import numpy as np

from .units import Unit

Score = Callable[[list[frozenset[int]]], np.ndarray]  # removal sets → F [len(removed), rows]
NUMBERS = ("deletion_aopc", "insertion_aopc", "comprehensiveness", "sufficiency")


def step_counts(n_units: int, steps: int) -> list[int]:
    """Units removed (or kept) at the fractions 0, 1/steps, …, 1: ⌊n·i/steps + ½⌋, deduplicated.

    >>> step_counts(4, 10), step_counts(10, 4), step_counts(1, 10)
    ([0, 1, 2, 3, 4], [0, 3, 5, 8, 10], [0, 1])
    """
    counts = {(2 * n_units * i + steps) // (2 * steps) for i in range(steps + 1)}  # in integers: exact
    return sorted(counts | {0, n_units})


def top_count(n_units: int, top_fraction: float) -> int:
    """k, the units ERASER's two numbers keep or remove: ⌊f·n + ½⌋, at least 1 and at most n."""
    return int(min(n_units, max(1, np.floor(top_fraction * n_units + 0.5))))


def versions_bound(n_rows: int, n_units: int, steps: int, random_orders: int, top_fraction: float) -> int:
    """The most distinct versions `evaluate` can score (before any work: a request's limit):
    nothing and everything removed, and per order (each row's and each random one) the deletion
    and insertion sets strictly between, and ERASER's two unless a curve has them.

    >>> versions_bound(1, 5, 10, 0, 0.2), versions_bound(9, 6, 3, 2, 0.2)
    (10, 68)
    """
    counts = step_counts(n_units, steps)
    per_order = 2 * (len(counts) - 2) + (0 if top_count(n_units, top_fraction) in counts else 2)
    return 2 + (n_rows + random_orders) * max(0, per_order)


def explanation_orders(attributions: np.ndarray) -> np.ndarray:
    """[rows, units]: each row's units, largest attribution first (ties: the earlier unit first)."""
    return np.argsort(-attributions, axis=1, kind="stable")


def random_permutations(n_units: int, count: int, seed: int) -> np.ndarray:
    """[count, units]: order k is default_rng((seed, k)).permutation(n_units)."""
    return np.array([np.random.default_rng((seed, k)).permutation(n_units) for k in range(count)], dtype=int).reshape(
        count, n_units
    )


def removal_sets(
    order: np.ndarray, counts: list[int], top_k: int
) -> tuple[list[frozenset], list[frozenset], list[frozenset]]:
    """For one order [units]: the sets removed along the deletion curve (the top j), along the
    insertion curve (all but the top j), and ERASER's two (the top k; all but the top k)."""
    ranked = [int(u) for u in order]
    deletion = [frozenset(ranked[:j]) for j in counts]
    insertion = [frozenset(ranked[j:]) for j in counts]
    eraser = [frozenset(ranked[:top_k]), frozenset(ranked[top_k:])]
    return deletion, insertion, eraser


def evaluate(
    attributions: np.ndarray,
    score: Score,
    steps: int = 10,
    random_orders: int = 10,
    seed: int = 0,
    top_fraction: float = 0.2,
) -> dict:
    """Deletion and insertion curves, their AOPC, ERASER's comprehensiveness and sufficiency of
    each row's explanation, the same for `random_orders` random orders, and the win rates.

    `attributions` [rows, units]; `score(removed)` returns F [len(removed), rows] of the input
    with each set of units removed (a list of frozensets of unit indices), and is called once,
    with every distinct set. Returns (numbers as Python floats; see the module's docstring)::

        {"n_units", "counts": [j…], "fractions": [j/n…], "top_k", "random_orders", "seed",
         "versions": distinct removal sets scored,
         "rows": [{"deletion": [D(j)…], "insertion": [I(j)…], "deletion_aopc", "insertion_aopc",
                   "comprehensiveness", "sufficiency",
                   "random": {"deletion_aopc": {"mean", "std"}, … (the four), "deletion": [mean D(j)…],
                              "insertion": [mean I(j)…], "deletion_std": [std D(j)…],
                              "insertion_std": [std I(j)…]} | None (no random orders),
                   "win_rate": {"deletion", "insertion"} (None without random orders)}…]}
    """
    attributions = np.asarray(attributions, dtype=np.float64)
    if attributions.ndim != 2 or attributions.shape[1] < 1:
        raise ValueError(f"attributions must be [rows, units] with at least one unit, got shape {attributions.shape}")
    if not np.isfinite(attributions).all():
        raise ValueError("attributions must be finite")
    if steps < 1 or random_orders < 0 or seed < 0 or not 0 < top_fraction <= 1:
        raise ValueError("steps ≥ 1, random_orders ≥ 0, seed ≥ 0 and 0 < top_fraction ≤ 1")
    n_rows, n_units = attributions.shape
    counts, top_k = step_counts(n_units, steps), top_count(n_units, top_fraction)
    orders = np.concatenate(
        [explanation_orders(attributions), random_permutations(n_units, random_orders, seed)]
    )  # [rows + r, units]
    index: dict[frozenset, int] = {}  # every distinct removal set → its version

    def versions(sets: list[frozenset]) -> list[int]:
        return [index.setdefault(s, len(index)) for s in sets]

    laid_out = [tuple(versions(sets) for sets in removal_sets(order, counts, top_k)) for order in orders]
    deletion = np.array([d for d, _, _ in laid_out])  # [orders, counts] version indices
    insertion = np.array([i for _, i, _ in laid_out])
    eraser = np.array([e for _, _, e in laid_out])  # [orders, 2]
    scored = np.asarray(score(list(index)), dtype=np.float64)  # [versions, rows]
    if scored.shape != (len(index), n_rows):
        raise ValueError(f"score returned shape {scored.shape}, expected {(len(index), n_rows)}")
    rows = []
    for r in range(n_rows):
        used = np.r_[r, n_rows : len(orders)]  # this row's explanation, then the random orders
        d, i, e = scored[deletion[used], r], scored[insertion[used], r], scored[eraser[used], r]  # [1 + random, …]
        numbers = _numbers(d, i, e)  # name → [1 + random]
        rows.append(_row(d, i, numbers))
    return {
        "n_units": n_units,
        "counts": counts,
        "fractions": [j / n_units for j in counts],
        "top_k": top_k,
        "random_orders": random_orders,
        "seed": seed,
        "versions": len(index),
        "rows": rows,
    }


def _numbers(deletion: np.ndarray, insertion: np.ndarray, eraser: np.ndarray) -> dict[str, np.ndarray]:
    """The four numbers of each order from its curves [orders, counts] and ERASER scores [orders, 2]."""
    full = deletion[:, :1]  # F(x): nothing removed
    return {
        "deletion_aopc": (full - deletion[:, 1:]).mean(1),
        "insertion_aopc": (insertion[:, 1:] - insertion[:, :1]).mean(1),
        "comprehensiveness": full[:, 0] - eraser[:, 0],
        "sufficiency": full[:, 0] - eraser[:, 1],
    }


def _row(deletion: np.ndarray, insertion: np.ndarray, numbers: dict[str, np.ndarray]) -> dict:
    """One row's answer: order 0 is the explanation's, the others random."""
    row = {
        "deletion": deletion[0].tolist(),
        "insertion": insertion[0].tolist(),
        **{name: float(values[0]) for name, values in numbers.items()},
    }
    if len(deletion) == 1:
        return {**row, "random": None, "win_rate": {"deletion": None, "insertion": None}}
    row["random"] = {
        **{
            name: {"mean": float(values[1:].mean()), "std": float(values[1:].std())} for name, values in numbers.items()
        },
        "deletion": deletion[1:].mean(0).tolist(),
        "insertion": insertion[1:].mean(0).tolist(),
        "deletion_std": deletion[1:].std(0).tolist(),
        "insertion_std": insertion[1:].std(0).tolist(),
    }
    row["win_rate"] = {curve: _win_rate(numbers[f"{curve}_aopc"]) for curve in ("deletion", "insertion")}
    return row


def _win_rate(areas: np.ndarray) -> float:
    """The share of random orders (areas[1:]) with a smaller area than the explanation's (areas[0]), ties half."""
    mine, others = areas[0], areas[1:]
    return float(((others < mine).sum() + 0.5 * (others == mine).sum()) / len(others))


def unit_attributions(units: list[Unit], values: np.ndarray) -> np.ndarray:
    """[rows, units]: per unit the sum of its tokens' values [rows, tokens] (tokens past the
    values' end count nothing), e.g. a gradient method's token rows summed per word or sentence.

    >>> unit_attributions([{"tokens": [0, 2]}, {"tokens": [1]}], np.array([[1.0, 2.0, 3.0]]))
    array([[4., 2.]])
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros((values.shape[0], len(units)))
    for k, unit in enumerate(units):
        covered = [i for i in unit["tokens"] if i < values.shape[1]]
        out[:, k] = values[:, covered].sum(1)
    return out


__all__ = [
    "evaluate",
    "step_counts",
    "top_count",
    "versions_bound",
    "explanation_orders",
    "random_permutations",
    "removal_sets",
    "unit_attributions",
    "NUMBERS",
]
