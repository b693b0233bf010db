"""Standard normal distribution on numpy arrays, accurate to a few ulp over the whole real line.

numpy has no `erf`, and the project does not depend on scipy, so the normal CDF is built here from
W. J. Cody's rational Chebyshev approximations ("Rational Chebyshev approximations for the error
function", Math. Comp. 23 (1969) 631-638; netlib SPECFUN CALERF, rev. 1990). The coefficients are
the IEEE double-precision set that Peter Jäckel's "Let's Be Rational" ships (as re-published in
vollib's py_lets_be_rational, erf_cody.py).

Two details keep the relative error near machine precision deep in the tails, where a naive
`0.5 * erfc(-x / sqrt(2))` loses digits:
- the Gaussian factor exp(-x²/2) is evaluated from the exact `x`, split Cody-style into a part
  whose square is exact and a small remainder, so the rounding of x² is never amplified by exp;
- the scaled function erfcx(y) = exp(y²)·erfc(y) carries everything else; it is smooth, so the
  rounding of y = |x|/√2 costs only about one ulp.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

_SQRT_HALF = 0.70710678118654752440
_INV_SQRT_2PI = 0.39894228040143267794
_INV_SQRT_PI = 0.56418958354775628695

# |y| at or below which erf(y) comes straight from its own rational (Cody's first interval),
# and the boundary between the second (rational in y) and third (rational in 1/y²) intervals.
_ERF_THRESHOLD = 0.46875
_ERFC_SPLIT = 4.0

# Past this, exp(-x²/2) is zero in double precision; clamping keeps inf out of the split below.
_GAUSS_ZERO = 40.0

_A = (
    3.1611237438705656,
    113.864154151050156,
    377.485237685302021,
    3209.37758913846947,
    0.185777706184603153,
)
_B = (23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062)
_C = (
    0.564188496988670089,
    8.88314979438837594,
    66.1191906371416295,
    298.635138197400131,
    881.95222124176909,
    1712.04761263407058,
    2051.07837782607147,
    1230.33935479799725,
    2.15311535474403846e-8,
)
_D = (
    15.7449261107098347,
    117.693950891312499,
    537.181101862009858,
    1621.38957456669019,
    3290.79923573345963,
    4362.61909014324716,
    3439.36767414372164,
    1230.33935480374942,
)
_P = (
    0.305326634961232344,
    0.360344899949804439,
    0.125781726111229246,
    0.0160837851487422766,
    6.58749161529837803e-4,
    0.0163153871373020978,
)
_Q = (
    2.56852019228982242,
    1.87295284992346047,
    0.527905102951428412,
    0.0605183413124413191,
    0.00233520497626869185,
)


def _erf_small(y: NDArray[np.float64]) -> NDArray[np.float64]:
    """erf(y) for |y| <= 0.46875 (Cody's first interval)."""
    ysq = y * y
    num = _A[4] * ysq
    den = ysq.copy()
    for a, b in zip(_A[:3], _B[:3], strict=True):
        num += a
        num *= ysq
        den += b
        den *= ysq
    return y * (num + _A[3]) / (den + _B[3])


def _erfcx_mid(y: NDArray[np.float64]) -> NDArray[np.float64]:
    """erfcx(y) for 0.46875 < y <= 4 (Cody's second interval)."""
    num = _C[8] * y
    den = y.copy()
    for c, d in zip(_C[:7], _D[:7], strict=True):
        num += c
        num *= y
        den += d
        den *= y
    return (num + _C[7]) / (den + _D[7])


def _erfcx_large(y: NDArray[np.float64]) -> NDArray[np.float64]:
    """erfcx(y) for y > 4 (Cody's third interval, a rational in 1/y²)."""
    with np.errstate(over="ignore"):
        ysq = 1.0 / (y * y)
    num = _P[5] * ysq
    den = ysq.copy()
    for p, q in zip(_P[:4], _Q[:4], strict=True):
        num += p
        num *= ysq
        den += q
        den *= ysq
    return (_INV_SQRT_PI - ysq * (num + _P[4]) / (den + _Q[4])) / y


def _erfcx_nonnegative(y: NDArray[np.float64]) -> NDArray[np.float64]:
    """erfcx(y) for 1-d y >= 0 (NaN passes through the last branch).

    Branches are picked with index arrays, not boolean masks: numpy's masked gather/scatter costs
    as much as a dozen arithmetic passes, and this function sits in every solver iteration.
    """
    out = np.empty_like(y)
    small = np.flatnonzero(y <= _ERF_THRESHOLD)
    large = np.flatnonzero(~(y <= _ERFC_SPLIT))
    if small.size + large.size < y.size:
        mid = np.flatnonzero((y > _ERF_THRESHOLD) & (y <= _ERFC_SPLIT))
        out[mid] = _erfcx_mid(y[mid])
    if small.size:
        ys = y[small]
        out[small] = np.exp(ys * ys) * (1.0 - _erf_small(ys))
    if large.size:
        out[large] = _erfcx_large(y[large])
    return out


def erfcx(y: ArrayLike) -> NDArray[np.float64]:
    """Scaled complementary error function exp(y²)·erfc(y).

    Exposed because option pricing in normalised form needs the Gaussian tail without its
    exp(-y²) factor: differences of two tails stay representable long after each would underflow.
    Overflows to +inf for y below about -26.6, where exp(y²) does.
    """
    y = np.asarray(y, dtype=np.float64)
    flat = y.ravel()
    out = _erfcx_nonnegative(np.abs(flat))
    neg = np.flatnonzero(flat < 0)
    if neg.size:
        yn = flat[neg]
        with np.errstate(over="ignore"):
            out[neg] = 2.0 * np.exp(yn * yn) - out[neg]
    return out.reshape(y.shape)


def gauss(x: ArrayLike) -> NDArray[np.float64]:
    """exp(-x²/2) without the error that rounding x² would put into the exponent.

    x = h + l with h a multiple of 1/16, so h² is exact and exp(-h²/2)·exp(-l(x+h)/2) only sees
    the rounding of a small term (Cody's trick). Relative error stays at a few ulp even where the
    result is 1e-300.
    """
    ax = np.minimum(np.abs(np.asarray(x, dtype=np.float64)), _GAUSS_ZERO)
    head = np.trunc(ax * 16.0) / 16.0
    return np.exp(-0.5 * head * head) * np.exp(-0.5 * (ax - head) * (ax + head))


def norm_pdf(x: ArrayLike) -> NDArray[np.float64]:
    """Standard normal density, relative error of a few ulp everywhere it is representable."""
    return _INV_SQRT_2PI * gauss(x)


def norm_cdf(x: ArrayLike) -> NDArray[np.float64]:
    """Standard normal cumulative distribution function Φ(x).

    Relative error of a few ulp for every x (lower tail included, down to the subnormal range);
    the upper tail 1 - Φ(x) is exact to an absolute ulp, as float64 allows.
    """
    x = np.asarray(x, dtype=np.float64)
    flat = x.ravel()
    y = np.abs(flat) * _SQRT_HALF
    out = np.empty_like(flat)
    central = np.flatnonzero(y <= _ERF_THRESHOLD)
    if central.size:
        out[central] = 0.5 + 0.5 * _erf_small(flat[central] * _SQRT_HALF)
    if central.size < flat.size:
        tails = np.flatnonzero(~(y <= _ERF_THRESHOLD))
        xt = flat[tails]
        tail = 0.5 * _erfcx_nonnegative(y[tails]) * gauss(xt)
        # upper = 1 for x >= 0: out = 1 - tail there and tail elsewhere, each with one rounding
        # (cheaper than np.where, whose scattered-mask loop is slow)
        upper = (xt >= 0).astype(np.float64)
        out[tails] = upper + (1.0 - 2.0 * upper) * tail
    return out.reshape(x.shape)


# Wichura's AS 241 (PPND16), "The percentage points of the normal distribution", Applied
# Statistics 37 (1988) 477-484: relative accuracy about 1e-16. Coefficients in ascending order.
_PPF_CENTRAL_NUM = (
    3.3871328727963666080e0,
    1.3314166789178437745e2,
    1.9715909503065514427e3,
    1.3731693765509461125e4,
    4.5921953931549871457e4,
    6.7265770927008700853e4,
    3.3430575583588128105e4,
    2.5090809287301226727e3,
)
_PPF_CENTRAL_DEN = (
    1.0,
    4.2313330701600911252e1,
    6.8718700749205790830e2,
    5.3941960214247511077e3,
    2.1213794301586595867e4,
    3.9307895800092710610e4,
    2.8729085735721942674e4,
    5.2264952788528545610e3,
)
_PPF_MID_NUM = (
    1.42343711074968357734e0,
    4.63033784615654529590e0,
    5.76949722146069140550e0,
    3.64784832476320460504e0,
    1.27045825245236838258e0,
    2.41780725177450611770e-1,
    2.27238449892691845833e-2,
    7.74545014278341407640e-4,
)
_PPF_MID_DEN = (
    1.0,
    2.05319162663775882187e0,
    1.67638483018380384940e0,
    6.89767334985100004550e-1,
    1.48103976427480074590e-1,
    1.51986665636164571966e-2,
    5.47593808499534494600e-4,
    1.05075007164441684324e-9,
)
_PPF_TAIL_NUM = (
    6.65790464350110377720e0,
    5.46378491116411436990e0,
    1.78482653991729133580e0,
    2.96560571828504891230e-1,
    2.65321895265761230930e-2,
    1.24266094738807843860e-3,
    2.71155556874348757815e-5,
    2.01033439929228813265e-7,
)
_PPF_TAIL_DEN = (
    1.0,
    5.99832206555887937690e-1,
    1.36929880922735805310e-1,
    1.48753612908506148525e-2,
    7.86869131145613259100e-4,
    1.84631831751005468180e-5,
    1.42151175831644588870e-7,
    2.04426310338993978564e-15,
)


def _ratio(r: NDArray[np.float64], num: tuple[float, ...], den: tuple[float, ...]):
    p = np.full_like(r, num[-1])
    q = np.full_like(r, den[-1])
    for a, b in zip(num[-2::-1], den[-2::-1], strict=True):
        p = p * r + a
        q = q * r + b
    return p / q


def norm_ppf(u: ArrayLike) -> NDArray[np.float64]:
    """Inverse of Φ (AS 241): the implied-volatility solver's initial guesses are built on it.

    Returns -inf at 0, +inf at 1 and NaN outside [0, 1].
    """
    u = np.asarray(u, dtype=np.float64)
    flat = u.ravel()
    q = flat - 0.5
    out = np.empty_like(flat)
    central = np.abs(q) <= 0.425
    qc = q[central]
    out[central] = qc * _ratio(0.180625 - qc * qc, _PPF_CENTRAL_NUM, _PPF_CENTRAL_DEN)
    tails = ~central
    qt = q[tails]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(-np.log(np.where(qt < 0, flat[tails], 1.0 - flat[tails])))
        z = np.empty_like(r)
        mid = r <= 5.0
        z[mid] = _ratio(r[mid] - 1.6, _PPF_MID_NUM, _PPF_MID_DEN)
        far = ~mid
        z[far] = _ratio(r[far] - 5.0, _PPF_TAIL_NUM, _PPF_TAIL_DEN)
    out[tails] = np.where(qt < 0, -z, z)
    out[flat == 0.0] = -np.inf
    out[flat == 1.0] = np.inf
    return out.reshape(u.shape)
