"""Quadrature rules on [0, 1]: captum's five approximation methods, and a Gauss–Kronrod pair.

captum's rules are reproduced here (`fixed_rule`) so that the runtime never imports
`captum.attr`, which imports matplotlib into every worker; a test compares the nodes and
weights with captum's own, float for float. Gauss–Legendre is numpy's `leggauss` rescaled,
as captum does; the Riemann nodes come from `torch.linspace` in float32, as captum's do.

The Gauss–Kronrod pair (G7 ⊂ K15) is the one adaptive integration needs: its 15 Kronrod
nodes contain the 7 Gauss nodes, so one set of 15 gradients gives two estimates of the same
integral, and their difference is a local error estimate for free (QUADPACK's QK15 table,
checked by a test: K15 integrates polynomials of degree 22, G7 of degree 13, exactly).

>>> alphas, weights = fixed_rule("gausslegendre", 2)
>>> [round(a, 4) for a in alphas], weights
([0.2113, 0.7887], [0.5, 0.5])
>>> nodes, kronrod, gauss = kronrod_rule(0.0, 1.0)
>>> len(nodes), round(float(kronrod.sum()), 12), round(float(gauss.sum()), 12), int((gauss > 0).sum())
(15, 1.0, 1.0, 7)
"""

import numpy as np
import torch

from ..contract.vocabulary import FIXED_METHODS, KRONROD_POINTS

# QUADPACK's QK15 on [-1, 1] (Piessens et al. 1983): the non-negative Kronrod nodes, largest
# first, their Kronrod weights, and the weights of the Gauss nodes among them (nodes 1, 3, 5, 7).
_XK = (
    0.991455371120812639206854697526329,
    0.949107912342758524526189684047851,
    0.864864423359769072789712788640926,
    0.741531185599394439863864773280788,
    0.586087235467691130294144845693013,
    0.405845151377397166906606412076961,
    0.207784955007898467600689403773245,
    0.0,
)
_WK = (
    0.022935322010529224963732008058970,
    0.063092092629978553290700663189204,
    0.104790010322250183839876322541518,
    0.140653259715525918745189590510238,
    0.169004726639267902826583426598550,
    0.190350578064785409913256402421014,
    0.204432940075298892414161999234649,
    0.209482141084727828012999174891714,
)
_WG = (
    0.129484966168869693270611432679082,
    0.279705391489276667901467771423780,
    0.381830050505118944950369775488975,
    0.417959183673469387755102040816327,
)


def _kronrod_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(15 nodes ascending on [-1, 1], Kronrod weights, Gauss weights: 0 at Kronrod-only nodes)."""
    x = np.array([-v for v in _XK[:-1]] + [0.0] + list(_XK[-2::-1]))
    wk = np.array(list(_WK[:-1]) + [_WK[-1]] + list(_WK[-2::-1]))
    wg = np.zeros(15)
    for j, i in enumerate((1, 3, 5)):  # the Gauss nodes of G7 are QK15's odd-numbered ones
        wg[i] = wg[14 - i] = _WG[j]
    wg[7] = _WG[3]
    return x, wk, wg


_X15, _WK15, _WG15 = _kronrod_table()
assert len(_X15) == KRONROD_POINTS


def kronrod_rule(a: float, b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(α [15], Kronrod weights [15], Gauss weights [15]) of G7/K15 on [a, b] ⊂ [0, 1]."""
    half, center = (b - a) / 2, (a + b) / 2
    return center + half * _X15, half * _WK15, half * _WG15


def fixed_rule(method: str, n_steps: int) -> tuple[list[float], list[float]]:
    """(alphas, step sizes) of captum's `method` with `n_steps` points, exactly captum's floats."""
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n_steps)
        return (0.5 * (1 + x)).tolist(), (0.5 * w).tolist()
    kind = {
        "riemann_left": "left",
        "riemann_right": "right",
        "riemann_middle": "middle",
        "riemann_trapezoid": "trapezoid",
    }.get(method)
    if kind is None:
        raise ValueError(f"no fixed rule named {method!r}; known: {FIXED_METHODS}")
    if n_steps < 2 and kind != "right":  # one right point, α = 1 and weight 1, is gradient × input
        raise ValueError(f"{method} needs at least 2 steps, got {n_steps}")
    n = n_steps
    steps = [1 / n] * n
    if kind == "trapezoid":
        steps[0] /= 2
        steps[-1] /= 2
    start, end = {
        "trapezoid": (0, 1),
        "left": (0, 1 - 1 / n),
        "middle": (1 / (2 * n), 1 - 1 / (2 * n)),
        "right": (1 / n, 1),
    }[kind]
    return torch.linspace(start, end, n).tolist(), steps


def fejer_rule(level: int) -> tuple[np.ndarray, np.ndarray]:
    """(α ascending, weights) of Fejér's second rule with 2^level − 1 points on [0, 1].

    Clenshaw–Curtis without the end points: nodes (1 − cos(kπ/N))/2, k = 1..N−1, N = 2^level,
    so each level's nodes contain the previous level's (α of k at N is α of 2k at 2N, the
    same float). Weights: 2 sin θₖ / N · Σ_{j ≤ N/2} sin((2j−1)θₖ)/(2j−1) (Waldvogel 2006).
    """
    n = 2**level
    k = np.arange(1, n)
    theta = k * np.pi / n
    j = np.arange(1, n // 2 + 1)
    sums = (np.sin(np.outer(theta, 2 * j - 1)) / (2 * j - 1)).sum(1)
    return (1 - np.cos(theta)) / 2, 2 * np.sin(theta) / n * sums
