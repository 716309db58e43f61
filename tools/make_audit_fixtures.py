"""Reference values for dpft's one-run audit bound (Tests/DPFTTests/Fixtures/audit/bounds.json).

Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run" (NeurIPS 2023),
Theorem 5.2 and its appendix algorithm: m canaries, each included independently with
probability 1/2; the auditor makes r guesses (abstaining on the rest), v of them correct.
Under (eps, delta)-DP the probability of at least v correct guesses is at most

    beta + 2 m delta alpha,   beta  = P[Binomial(r, q) >= v],  q = e^eps / (1 + e^eps),
                              alpha = max_{1 <= i <= v} P[v - i <= Binomial(r, q) < v] / i.

The empirical lower bound at confidence 1 - p is the largest eps whose p-value is still
below p (0 when even eps = 0 is not rejected), found by bisection to 1e-9.

Run with the tools/ venv: tools/.venv/bin/python tools/make_audit_fixtures.py
"""
import json
import math
import pathlib

from scipy import stats


def p_value(m, r, v, eps, delta):
    q = 1 / (1 + math.exp(-eps))
    beta = stats.binom.sf(v - 1, r, q)
    alpha, below = 0.0, 0.0
    for i in range(1, v + 1):
        below += stats.binom.pmf(v - i, r, q)
        alpha = max(alpha, below / i)
    return min(beta + 2 * m * delta * alpha, 1.0)


def epsilon_lower_bound(m, r, v, delta, p):
    if p_value(m, r, v, 0.0, delta) >= p:
        return 0.0
    low, high = 0.0, 1.0
    while p_value(m, r, v, high, delta) < p:
        low, high = high, 2 * high
    while high - low > 1e-9:
        middle = (low + high) / 2
        if p_value(m, r, v, middle, delta) < p:
            low = middle
        else:
            high = middle
    return low


CASES = [  # m, r, v, delta, p
    (1000, 0, 0, 1e-5, 0.05),      # no guesses
    (1000, 100, 100, 1e-5, 0.05),  # all correct
    (1000, 100, 0, 1e-5, 0.05),    # all wrong
    (1000, 100, 50, 1e-5, 0.05),   # chance
    (1000, 100, 70, 1e-5, 0.05),
    (1000, 200, 180, 1e-5, 0.05),
    (1000, 500, 300, 1e-5, 0.05),
    (1000, 20, 20, 1e-5, 0.01),
    (1000, 1000, 1000, 1e-5, 0.05),
    (1000, 100, 90, 0.0, 0.05),    # pure DP
    (1000, 100, 90, 1e-3, 0.05),   # a delta that matters
    (100, 10, 10, 1e-5, 0.05),
    (5000, 2000, 1400, 1e-6, 0.01),
    (1000, 100, 100, 1e-5, 0.01),
]


def main():
    points = []
    for m, r, v, delta, p in CASES:
        eps = epsilon_lower_bound(m, r, v, delta, p)
        points.append({"m": m, "r": r, "v": v, "delta": delta, "p": p, "epsilon": eps,
                       "p_value_at_1": p_value(m, r, v, 1.0, delta)})
    out = pathlib.Path(__file__).resolve().parent.parent / "Tests/DPFTTests/Fixtures/audit/bounds.json"
    out.write_text(json.dumps({"source": "tools/make_audit_fixtures.py (scipy " + __import__("scipy").__version__ + ")",
                               "points": points}, indent=1) + "\n")
    for point in points:
        print(point)


if __name__ == "__main__":
    main()
