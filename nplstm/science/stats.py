"""Welch's unequal-variance t-test, with the Student t distribution written out (no scipy).

The two-sided p-value of a t statistic with df degrees of freedom is a regularized incomplete beta
function, P(|T| >= |t|) = I_x(df/2, 1/2) with x = df / (df + t²) (Abramowitz & Stegun 1964, section 26.7),
and I_x(a, b) is evaluated by its continued fraction (DLMF 8.17.22) with the modified Lentz algorithm
(Lentz 1976, Applied Optics 15; Thompson & Barnett 1986, J. Comput. Phys. 64).
Welch (1947, Biometrika 34) gives the statistic; Satterthwaite (1946, Biometrics Bulletin 2) the degrees of freedom.
"""
from __future__ import annotations

import math
from typing import NamedTuple

TINY = 1e-300     # Lentz: a denominator that came out 0 is replaced by this, so the recurrence goes on
EPS = 1e-15       # the continued fraction has converged when a step changes it by less than this, relatively
MAX_TERMS = 10_000

VERDICTS = ("hurts", "no significant difference", "helps")


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) = B(x; a, b) / B(a, b), for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc: expected a > 0 and b > 0, got a={a!r}, b={b!r}")
    if not 0 <= x <= 1:
        raise ValueError(f"betainc: expected 0 <= x <= 1, got {x!r}")
    if x == 0 or x == 1:
        return float(x)
    # x^a (1-x)^b / B(a, b), in logarithms so that large a, b do not overflow
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    # the fraction converges fast for x < (a+1)/(a+b+2); beyond, use I_x(a, b) = 1 - I_{1-x}(b, a)
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """1 / (1 + d_1 / (1 + d_2 / (1 + ...))), the continued fraction of DLMF 8.17.22, where
    d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)) and d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m)).

    The denominator G = 1 + d_1 / (1 + d_2 / ...) is evaluated front to back by modified Lentz: G_n = G_{n-1} C_n D_n
    with C_n = 1 + d_n / C_{n-1} and D_n = 1 / (1 + d_n D_{n-1}), starting from G_0 = C_0 = 1, D_0 = 0.
    """
    g, c, d = 1.0, 1.0, 0.0
    for n in range(1, MAX_TERMS):
        m = n // 2
        if n % 2:                            # odd n = 2m + 1
            term = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        else:                                # even n = 2m
            term = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + term * d
        d = 1.0 / (d if abs(d) > TINY else TINY)   # D_n (a zero denominator is nudged, as Lentz prescribes)
        c = 1.0 + term / c
        c = c if abs(c) > TINY else TINY           # C_n
        g *= c * d
        if abs(c * d - 1.0) < EPS:
            return 1.0 / g
    raise ArithmeticError(f"betainc: the continued fraction did not converge in {MAX_TERMS} terms (a={a}, b={b}, x={x})")


def t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's T with df > 0 degrees of freedom (df need not be an integer: Welch's is not)."""
    if not df > 0:
        raise ValueError(f"t_two_sided: expected df > 0, got {df!r}")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    t2 = t * t
    if t2 < df:                              # x = df / (df + t²) near 1: use 1 - x = t² / (df + t²), not 1 - x rounded
        return 1.0 - betainc(0.5, df / 2, t2 / (df + t2))
    return betainc(df / 2, 0.5, df / (df + t2))


class Welch(NamedTuple):
    """Welch's test of mean(a) = mean(b): the statistic, Welch–Satterthwaite degrees of freedom, two-sided p."""
    t: float
    df: float
    p: float
    mean_a: float
    mean_b: float


def mean_var(xs) -> tuple[float, float]:
    """The sample mean and the unbiased sample variance (n - 1 in the denominator) of at least 2 numbers."""
    xs = [float(x) for x in xs]
    n = len(xs)
    mean = math.fsum(xs) / n
    return mean, math.fsum((x - mean) ** 2 for x in xs) / (n - 1)


def welch(a, b) -> Welch:
    """Welch's t-test of two independent samples, each of at least 2 finite numbers.

    t = (ā - b̄) / sqrt(s_a²/n_a + s_b²/n_b); df = (s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a-1) + (s_b²/n_b)²/(n_b-1)).
    Both samples without spread: p = 1 if the means are equal, else 0 (the difference is exact), df = n_a + n_b - 2.
    """
    for name, xs in (("a", a), ("b", b)):
        if len(xs) < 2 or not all(math.isfinite(float(x)) for x in xs):
            raise ValueError(f"welch: sample {name} needs at least 2 finite numbers, got {list(xs)!r}")
    (ma, va), (mb, vb) = mean_var(a), mean_var(b)
    qa, qb = va / len(a), vb / len(b)        # squared standard errors of the two means
    if qa + qb == 0:
        return Welch(0.0 if ma == mb else math.copysign(math.inf, ma - mb), len(a) + len(b) - 2.0,
                     1.0 if ma == mb else 0.0, ma, mb)
    t = (ma - mb) / math.sqrt(qa + qb)
    df = (qa + qb) ** 2 / (qa ** 2 / (len(a) - 1) + qb ** 2 / (len(b) - 1))
    return Welch(t, df, t_two_sided(t, df), ma, mb)


def verdict(p: float, mean: float, reference: float, higher_is_better: bool, alpha: float = 0.05) -> str:
    """"hurts", "helps" or "no significant difference": a variant against the reference at level alpha, in the
    metric's direction (a lower error helps; a higher accuracy helps)."""
    if not (p < alpha):                      # a NaN p is no evidence either
        return VERDICTS[1]
    better = mean > reference if higher_is_better else mean < reference
    return VERDICTS[2] if better else VERDICTS[0]
