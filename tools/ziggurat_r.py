"""r of the continuous N-box ziggurat of f(z) = exp(-z^2/2) (Marsaglia & Tsang 2000), in
40-digit mpmath: v = r f(r) + T(r) with T(r) the tail beyond r, x_1 = r,
x_{i+1} = f^-1(f(x_i) + v/x_i), and r is the root of f(x_{N-1}) + v/x_{N-1} = 1 (bisection).
NoiseSamplerTests compares GridZiggurat's r with this value; 256 boxes give Marsaglia &
Tsang's published 3.6541528853610088.

    tools/.venv/bin/python tools/ziggurat_r.py 2048
"""
import sys

import mpmath as mp

mp.mp.dps = 40


def f(x):
    return mp.exp(-x * x / 2)


def top_minus_mode(r, boxes):
    """f(x_{N-1}) + v/x_{N-1} - 1: positive when the stack for r passes the mode (r too small)."""
    v = r * f(r) + mp.sqrt(mp.pi / 2) * mp.erfc(r / mp.sqrt(2))
    x = r
    for _ in range(boxes - 2):
        y = f(x) + v / x
        if y >= 1:
            return mp.mpf(1)
        x = mp.sqrt(-2 * mp.log(y))
    return f(x) + v / x - 1


def ziggurat_r(boxes):
    low, high = mp.mpf(2), mp.mpf(6)
    for _ in range(140):
        middle = (low + high) / 2
        if top_minus_mode(middle, boxes) > 0:
            low = middle
        else:
            high = middle
    return (low + high) / 2


if __name__ == "__main__":
    for n in [int(a) for a in sys.argv[1:]] or [256, 1024, 2048]:
        print(n, mp.nstr(ziggurat_r(n), 17))
