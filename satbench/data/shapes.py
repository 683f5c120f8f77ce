"""Shapeset-3×2 (Glorot & Bengio 2010): grey images of one or two shapes, 9 classes.

Each image shows one or two shapes from {triangle, parallelogram, ellipse} on
a uniform background; the class is the unordered multiset of shapes: 3
singles and the 6 pairs with repetition (tt, tp, te, pp, pe, ee). Position,
rotation, scale, elongation and grey level are random, as in the original
generator: background grey in [0, 0.45], shape greys in [0.55, 1], scale
(circumscribed diameter over image side) in [0.2, 0.8]. The second shape is
painted over the first and may hide at most half of it: a pair whose overlap
is larger is redrawn. Ellipses are exact (the original used a 20-gon).

Rendering is plain numpy: inside-tests of every pixel against each shape in
its own frame, on a grid ``supersample`` times finer than the image, then
averaged (anti-aliased edges). Deterministic for a seed; train and test come
from independent streams, so the test set does not depend on ``n_train``.
"""

from __future__ import annotations

import itertools

import numpy as np

from satbench.data.base import Raw

KINDS = ("triangle", "parallelogram", "ellipse")
#: class -> kinds it shows: 3 singles, then the 6 unordered pairs
CLASSES = tuple([(k,) for k in range(3)] + list(itertools.combinations_with_replacement(range(3), 2)))
CLASS_NAMES = tuple("+".join(KINDS[k] for k in c) for c in CLASSES)
MAX_OVERLAP = 0.5  # most of the first shape the second may cover
_BLOCK = 256  # images rendered at once (bounds memory; fixed, so the output is too)
_SQRT3 = np.sqrt(3.0)


def _draw(rng: np.random.Generator, kinds: np.ndarray, size: int) -> dict:
    """Random pose and grey level for one shape per image (pixel units)."""
    n = len(kinds)
    radius = rng.uniform(0.2, 0.8, n) * size / 2
    direction = rng.normal(size=(n, 2))  # a uniform rotation, without trigonometry
    direction /= np.maximum(np.hypot(direction[:, 0], direction[:, 1]), 1e-12)[:, None]
    return {
        "kind": kinds,
        "cx": rng.uniform(radius, size - radius),  # the circumscribed circle stays inside
        "cy": rng.uniform(radius, size - radius),
        "radius": radius,
        "cos": direction[:, 0],
        "sin": direction[:, 1],
        "aspect": rng.uniform(0.5, 1.0, n),  # minor / major axis
        "shear": rng.uniform(-0.5, 0.5, n),  # parallelograms only
        "grey": rng.uniform(0.55, 1.0, n),
    }


#: inside-tests in a shape's own frame, by kind
_TESTS = (
    lambda u, v, s: (v >= -0.5) & (v <= 1.0 - _SQRT3 * np.abs(u)),  # equilateral, unit circumradius
    lambda u, v, s: (np.abs(v) <= 0.6) & (np.abs(u - s * v) <= 0.8 - 0.6 * np.abs(s)),  # corners on the unit circle
    lambda u, v, s: u * u + v * v <= 1.0,  # ellipse (minor axis already stretched to 1)
)
_FRAME = ("cx", "cy", "cos", "sin", "radius", "aspect", "shear")


def _inside(p: dict, grid: np.ndarray) -> np.ndarray:
    """(n, points) mask of the grid points inside each image's shape.

    Points go into the shape's frame (centred, unrotated, unit circumradius,
    minor axis stretched to 1), where every shape is a fixed inequality.
    """
    inside = np.zeros((len(p["kind"]), len(grid)), bool)
    gx, gy = grid[:, 0].astype(np.float32), grid[:, 1].astype(np.float32)
    for k, test in enumerate(_TESTS):
        rows = np.flatnonzero(p["kind"] == k)
        if len(rows):
            q = {name: p[name][rows, None].astype(np.float32) for name in _FRAME}
            dx, dy = gx - q["cx"], gy - q["cy"]
            u = (q["cos"] * dx + q["sin"] * dy) / q["radius"]
            v = (q["cos"] * dy - q["sin"] * dx) / (q["radius"] * q["aspect"])
            inside[rows] = test(u, v, q["shear"])
    return inside


def _take(p: dict, rows: np.ndarray) -> dict:
    return {k: v[rows] for k, v in p.items()}


def _put(p: dict, rows: np.ndarray, new: dict) -> None:
    for k in p:
        p[k][rows] = new[k]


def render(labels: np.ndarray, rng: np.random.Generator, size: int = 32, supersample: int = 2):
    """Images (n, size, size) in [0, 1] for ``labels``, and the fraction of each
    first shape that its second shape covers (0 for single shapes)."""
    n = len(labels)
    fine = size * supersample
    coords = (np.arange(fine) + 0.5) / supersample
    grid = np.stack(np.meshgrid(coords, coords, indexing="xy"), -1).reshape(-1, 2)

    classes = [CLASSES[c] for c in labels]
    pairs = np.array([len(c) == 2 for c in classes])
    swap = rng.random(n) < 0.5  # which shape of a pair lies on top
    first = np.array([c[1] if (len(c) == 2 and s) else c[0] for c, s in zip(classes, swap)])
    second = np.array([(c[0] if s else c[1]) if len(c) == 2 else -1 for c, s in zip(classes, swap)])

    background = rng.uniform(0.0, 0.45, n)
    p1 = _draw(rng, first, size)
    mask1 = _inside(p1, grid)
    image = np.where(mask1, p1["grey"][:, None], background[:, None])

    overlap = np.zeros(n)
    two = np.flatnonzero(pairs)
    p2 = _draw(rng, second[two], size)
    todo = np.arange(len(two))
    while len(todo):  # redraw the second shape wherever it hides too much of the first
        mask2 = _inside(_take(p2, todo), grid)
        m1 = mask1[two[todo]]
        frac = (m1 & mask2).sum(1) / np.maximum(m1.sum(1), 1)
        ok = frac <= MAX_OVERLAP
        rows = two[todo[ok]]
        image[rows] = np.where(mask2[ok], p2["grey"][todo[ok], None], image[rows])
        overlap[rows] = frac[ok]
        todo = todo[~ok]
        _put(p2, todo, _draw(rng, second[two[todo]], size))

    image = image.reshape(n, size, supersample, size, supersample).mean(axis=(2, 4))
    return image.astype(np.float32), overlap


def _split(n: int, seed: int, stream: int, size: int, supersample: int):
    """``n`` balanced examples from one independent stream of ``seed``."""
    rng = np.random.default_rng([seed, stream])
    labels = rng.permutation(np.arange(n) % len(CLASSES)).astype(np.int32)
    images = np.empty((n, size, size), np.float32)
    for i in range(0, n, _BLOCK):
        block_rng = np.random.default_rng([seed, stream, i // _BLOCK])
        images[i : i + _BLOCK], _ = render(labels[i : i + _BLOCK], block_rng, size, supersample)
    return images, labels


def shapeset(n_train: int = 10_000, n_test: int = 2_000, size: int = 32, supersample: int = 2,
             seed: int = 0) -> Raw:
    """Shapeset-3×2: ``size``² grey images, 9 classes, balanced to within one example."""
    x_train, y_train = _split(n_train, seed, 0, size, supersample)
    x_test, y_test = _split(n_test, seed, 1, size, supersample)
    meta = {"n_classes": len(CLASSES), "classes": list(CLASS_NAMES),
            "source": f"Shapeset-3x2 generator (Glorot & Bengio 2010), seed {seed}"}
    return Raw(x_train, y_train, x_test, y_test, meta)
