#!/usr/bin/env python3
"""Writes the privacy-accounting reference fixture for Tests/DPFTTests/AccountingReferenceTests.swift.

Reference implementations (tools/.venv):
  * Opacus 1.6 RDP (`opacus.accountants.analysis.rdp`): Mironov, Talwar & Zhang 2019 RDP of the
    Poisson-subsampled Gaussian with the signed series for fractional orders, converted to
    (epsilon, delta) by Balle et al. 2020 Theorem 21. dpft's RDP accountant uses the same
    conversion, so this is the reference its epsilon must match (1e-6 relative) on dpft's
    own orders list, which is passed in (`orders` below).
  * dp_accounting 0.6 `RdpAccountant(orders)`: same conversion (written as Asoodeh et al.
    Prop. 12, algebraically identical, plus the KL bound that gives 0). Its fractional orders
    sum |terms| of the series, an upper bound of the exact value, so dpft must be <= it.
  * dp_accounting 0.6 `PLDAccountant` (connect-the-dots, pessimistic, add-or-remove
    neighbours, value_discretization_interval 1e-4): dpft's PRV/PLD upper bound uses the same
    discretisation and must agree closely.
  * prv_accountant 0.2 `PRVAccountant` (Gopi, Lee & Wutschitz 2021), eps_error 0.01,
    delta_error = delta/1000: a certified bracket [lower, upper] on the true epsilon and an
    estimate.
  * mpmath (40 digits) numerical integration of A_alpha = E_{z~N(0,s^2)}[(1-q+q e^{(2z-1)/(2s^2)})^alpha]
    for per-order RDP values at a few (q, sigma): an implementation-independent check of
    integer and fractional orders.

Output: Tests/DPFTTests/Fixtures/accounting/reference.json
  {"generator", "versions", "orders", "pld_discretization", "prv_eps_error",
   "points": [{"noise_multiplier", "sample_rate", "steps", "delta",
               "rdp_opacus": {"epsilon", "order"}, "rdp_dp_accounting": {"epsilon", "order"},
               "pld_dp_accounting": epsilon,
               "prv_accountant": {"lower", "estimate", "upper"} or null where it refuses the input}],
   "histories": [{"segments": [{"noise_multiplier", "sample_rate", "steps"}], "delta",
                  "rdp_opacus", "pld_dp_accounting", "prv_accountant"}],
   "rdp_per_order": [{"noise_multiplier", "sample_rate", "rdp": [per order, one step]}]}

Run from the repository root:  tools/.venv/bin/python tools/make_accounting_fixtures.py
(takes a few minutes: prv_accountant at 100,000 steps with eps_error 0.01 is slow).
"""

import json
import math
import os
import random
import warnings
from importlib import metadata

import mpmath as mp
import numpy as np

import dp_accounting
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
from opacus.accountants.analysis import rdp as opacus_rdp
from prv_accountant import PoissonSubsampledGaussianMechanism, PRVAccountant

warnings.filterwarnings("ignore")

OUT = os.path.join("Tests", "DPFTTests", "Fixtures", "accounting", "reference.json")

# dpft's RDP orders (Sources/DPFT/Privacy/Accounting/RDPAccountant.swift, `defaultOrders`).
ORDERS = ([round(1 + x / 10, 1) for x in range(1, 100)] + list(range(12, 65))
          + [80, 96, 128, 192, 256])
PLD_DISCRETIZATION = 1e-4
PRV_EPS_ERROR = 0.01


def rdp_opacus(segments, delta):
    rdp = np.zeros(len(ORDERS))
    for sigma, q, steps in segments:
        rdp += np.array(opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=steps,
                                               orders=ORDERS))
    eps, order = opacus_rdp.get_privacy_spent(orders=ORDERS, rdp=rdp, delta=delta)
    return {"epsilon": float(eps), "order": float(order)}


def rdp_dp_accounting(segments, delta):
    accountant = rdp_privacy_accountant.RdpAccountant(orders=ORDERS)
    for sigma, q, steps in segments:
        event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
        accountant.compose(event, steps)
    eps, order = accountant.get_epsilon_and_optimal_order(delta)
    return {"epsilon": float(eps), "order": float(order)}


def pld_dp_accounting(segments, delta):
    accountant = pld_privacy_accountant.PLDAccountant(
        value_discretization_interval=PLD_DISCRETIZATION)
    for sigma, q, steps in segments:
        event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
        accountant.compose(event, steps)
    return float(accountant.get_epsilon(delta))


def prv(segments, delta):
    prvs = [PoissonSubsampledGaussianMechanism(sampling_probability=q, noise_multiplier=sigma)
            for sigma, q, _ in segments]
    steps = [s for _, _, s in segments]
    accountant = PRVAccountant(prvs=prvs, max_self_compositions=steps, eps_error=PRV_EPS_ERROR,
                               delta_error=delta / 1000)
    lower, estimate, upper = accountant.compute_epsilon(delta=delta, num_self_compositions=steps)
    return {"lower": float(lower), "estimate": float(estimate), "upper": float(upper)}


def prv_or_none(segments, delta):
    """prv_accountant refuses some inputs (e.g. "Discrete mean differs from continuous mean
    significantly" for small q): those points record null and the test skips that reference."""
    try:
        return prv(segments, delta)
    except (RuntimeError, ValueError) as error:
        print(f"prv_accountant failed for {segments}, delta={delta}: {error}")
        return None


def rdp_mpmath(q, sigma, alpha):
    """RDP of one step at order alpha: log(A_alpha)/(alpha-1), Mironov et al. 2019 Sec. 3.1."""
    q, s = mp.mpf(q), mp.mpf(sigma)
    a = mp.mpf(alpha)
    if float(alpha).is_integer():
        n = int(alpha)
        total = mp.fsum(mp.binomial(n, k) * (1 - q) ** (n - k) * q ** k
                        * mp.exp(mp.mpf(k * k - k) / (2 * s * s)) for k in range(n + 1))
    else:
        def integrand(z):
            return mp.npdf(z, 0, s) * (1 - q + q * mp.exp((2 * z - 1) / (2 * s * s))) ** a
        z0 = s * s * mp.log(1 / q - 1) + mp.mpf(0.5)
        points = sorted(set([-mp.inf, -10 * s, mp.mpf(0), mp.mpf(0.5), z0,
                             a - 10 * s, a, a + 10 * s, mp.inf]))
        total = mp.quad(integrand, points)
    return float(mp.log(total) / (a - 1))


def choose_points():
    """38 (sigma, q, steps, delta) spanning the ranges the issue names: hand-picked cases, then
    log-uniform draws kept when the RDP epsilon is in [0.3, 60] (smaller ones all sit at the
    largest order; larger ones test the discretisation of huge losses, not accounting)."""
    hand_picked = [
        (1.0, 0.01, 1000, 1e-5),        # a typical DP-SGD run
        (1.1, 256 / 60000, 10000, 1e-5),  # MNIST-like
        (0.8, 1e-3, 100000, 1e-6),
        (0.6, 1e-4, 100000, 1e-8),
        (5.0, 0.25, 1000, 1e-5),
        (20.0, 0.5, 1, 1e-3),           # huge sigma, one step: tiny epsilon
        (0.5, 0.5, 1, 1e-3),
        (0.5, 1e-4, 1, 1e-8),
        (2.0, 0.1, 100, 1e-6),
        (1.0, 0.5, 10, 1e-5),
        (10.0, 0.05, 100000, 1e-5),
        (3.0, 0.02, 30000, 1e-7),
    ]
    rng = random.Random(20240611)
    points = list(hand_picked)
    while len(points) < 38:
        q = 10 ** rng.uniform(-4, math.log10(0.5))
        sigma = 10 ** rng.uniform(math.log10(0.5), math.log10(20))
        steps = int(round(10 ** rng.uniform(0, 5)))
        delta = 10 ** rng.choice([-8, -7, -6, -5, -4, -3])
        eps = rdp_opacus([(sigma, q, steps)], delta)["epsilon"]
        if 0.3 <= eps <= 60:
            points.append((round(sigma, 4), float(f"{q:.4g}"), steps, delta))
    return points


def main():
    points = []
    for sigma, q, steps, delta in choose_points():
        segments = [(sigma, q, steps)]
        record = {"noise_multiplier": sigma, "sample_rate": q, "steps": steps, "delta": delta,
                  "rdp_opacus": rdp_opacus(segments, delta),
                  "rdp_dp_accounting": rdp_dp_accounting(segments, delta),
                  "pld_dp_accounting": pld_dp_accounting(segments, delta),
                  "prv_accountant": prv_or_none(segments, delta)}
        print(json.dumps(record))
        points.append(record)

    histories = []
    for segments, delta in [
        ([(1.0, 0.01, 1000), (0.8, 0.02, 500), (1.5, 0.005, 2000)], 1e-5),
        ([(2.0, 1e-3, 50000), (1.0, 1e-3, 5000)], 1e-6),
        ([(0.7, 0.05, 10), (5.0, 0.3, 40), (1.2, 0.01, 3000), (0.9, 0.01, 3000)], 1e-7),
    ]:
        record = {"segments": [{"noise_multiplier": s, "sample_rate": q, "steps": t}
                               for s, q, t in segments],
                  "delta": delta,
                  "rdp_opacus": rdp_opacus(segments, delta),
                  "pld_dp_accounting": pld_dp_accounting(segments, delta),
                  "prv_accountant": prv_or_none(segments, delta)}
        print(json.dumps(record))
        histories.append(record)

    mp.mp.dps = 40
    per_order = []
    for sigma, q in [(20.0, 1e-4), (0.5, 1e-4), (1.0, 1e-3), (0.8, 0.01), (2.0, 0.05),
                     (5.0, 0.25), (0.5, 0.5), (20.0, 0.5), (1.0, 0.45)]:
        values = [rdp_mpmath(q, sigma, a) for a in ORDERS]
        per_order.append({"noise_multiplier": sigma, "sample_rate": q, "rdp": values})
        print(f"per-order RDP for sigma={sigma}, q={q} done")

    fixture = {
        "generator": "tools/make_accounting_fixtures.py",
        "versions": {name: metadata.version(name)
                     for name in ["dp-accounting", "prv-accountant", "opacus", "mpmath"]},
        "orders": ORDERS,
        "pld_discretization": PLD_DISCRETIZATION,
        "prv_eps_error": PRV_EPS_ERROR,
        "points": points,
        "histories": histories,
        "rdp_per_order": per_order,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(points)} points, {len(histories)} histories, "
          f"{len(per_order)} per-order RDP rows")


if __name__ == "__main__":
    main()
