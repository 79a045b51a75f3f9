r"""dSprites (Matthey et al. 2017), generated on demand, or loaded from the official npz.

The factor grid and the index ordering are those of the official
``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``: 737,280 binary 64x64 images,
latents ``(color, shape, scale, orientation, posX, posY)`` of sizes
``[1, 3, 6, 40, 32, 32]``; the last factor varies fastest, so

.. math:: \text{index} = \sum_k c_k b_k,\qquad b = [737280, 245760, 40960, 1024, 32, 1].

The *pixels* of the original are not documented, so :func:`render` draws its own
sprites (square, ellipse, heart) by a vectorised inside-test at the pixel centres:
same grid, same ordering, not the same pixels. Image axes: ``images[n, row, col]``;
``posX`` moves the sprite along the columns (to the right), ``posY`` along the rows
(down). The sprite stays inside the frame for every latent combination.

Pass ``path=`` (or set ``DSPRITES_NPZ``) to use the official file behind the same
interface. See the book chapter "Representation learning without a decoder"
(``book/dsprites.md``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from numpy.typing import ArrayLike

__all__ = [
    "LATENTS_NAMES",
    "LATENTS_SIZES",
    "LATENTS_BASES",
    "IMAGE_SIZE",
    "N_IMAGES",
    "latents_values_grid",
    "latents_to_index",
    "index_to_latents",
    "render",
    "DSprites",
]

LATENTS_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
LATENTS_SIZES = np.array([1, 3, 6, 40, 32, 32], dtype=np.int64)
# the official recipe: bases = [prod(sizes[k+1:]) for k], with sizes[0] = 1 giving 737280 twice
LATENTS_BASES = np.concatenate([LATENTS_SIZES[::-1].cumprod()[::-1][1:], [1]]).astype(np.int64)
N_IMAGES = int(LATENTS_SIZES.prod())  # 737,280
IMAGE_SIZE = 64
ENV_VAR = "DSPRITES_NPZ"

# geometry, in pixels at scale 1: square half-side, ellipse semi-axes, heart unit
_SQUARE_HALF = 8.0
_ELLIPSE_AB = (11.0, 5.5)
_HEART_UNIT = 8.5  # the curve (u^2 + v^2 - 1)^3 = u^2 v^3 spans |u| <= 1.14, -1 <= v <= 1.25
_RADIUS = max(_SQUARE_HALF * np.sqrt(2.0), max(_ELLIPSE_AB), 1.26 * _HEART_UNIT)  # 11.3
_MARGIN = _RADIUS + 1.0  # centre range [margin, 64 - margin]: no pixel of a sprite is cut


def latents_values_grid() -> list:
    """The value of each class of each factor: ``[array(n_k) for k in LATENTS_NAMES]``."""
    return [
        np.ones(1),
        np.array([1.0, 2.0, 3.0]),
        np.linspace(0.5, 1.0, 6),
        np.linspace(0.0, 2 * np.pi, 40),
        np.linspace(0.0, 1.0, 32),
        np.linspace(0.0, 1.0, 32),
    ]


def latents_to_index(classes: np.ndarray) -> np.ndarray:
    """``[..., 6]`` latent classes -> ``[...]`` image indices (``classes @ LATENTS_BASES``)."""
    classes = np.asarray(classes, dtype=np.int64)
    if classes.shape[-1] != 6 or (classes < 0).any() or (classes >= LATENTS_SIZES).any():
        raise ValueError("classes must be [..., 6] with 0 <= c_k < LATENTS_SIZES[k]")
    return classes @ LATENTS_BASES


def index_to_latents(indices: np.ndarray) -> np.ndarray:
    """``[...]`` image indices -> ``[..., 6]`` latent classes (inverse of :func:`latents_to_index`)."""
    idx = np.asarray(indices, dtype=np.int64)
    if (idx < 0).any() or (idx >= N_IMAGES).any():
        raise ValueError(f"indices must lie in [0, {N_IMAGES})")
    return (idx[..., None] // LATENTS_BASES) % LATENTS_SIZES


def _classes_to_values(classes: np.ndarray) -> np.ndarray:
    grid = latents_values_grid()
    return np.stack([grid[k][classes[..., k]] for k in range(6)], axis=-1)


_WINDOW = 2 * int(np.ceil(_RADIUS)) + 2  # 26: every sprite pixel lies in this window


def _inside(shape: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inside-test in sprite coordinates (pixels at scale 1, v pointing up). ``[N, W, W]`` bool."""
    out = torch.zeros(u.shape, dtype=torch.bool)
    for s in range(3):
        m = shape == s
        uu, vv = u[m], v[m]
        if s == 0:
            inside = torch.maximum(uu.abs(), vv.abs()) <= _SQUARE_HALF
        elif s == 1:
            inside = (uu / _ELLIPSE_AB[0]) ** 2 + (vv / _ELLIPSE_AB[1]) ** 2 <= 1.0
        else:  # heart: (u^2 + v^2 - 1)^3 <= u^2 v^3, v shifted to centre its bounding box
            hu, hv = uu / _HEART_UNIT, vv / _HEART_UNIT + 0.1
            q = hu * hu + hv * hv - 1.0
            inside = q * q * q - hu * hu * hv * hv * hv <= 0.0
        out[m] = inside
    return out


def render(classes: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Draw sprites for ``[N, 6]`` latent classes: ``[N, 64, 64]`` uint8 in {0, 1}.

    Deterministic, vectorised over the batch (torch, float32, CPU). Each sprite is
    tested only in a ``26 x 26`` window around its centre, which contains every pixel
    it covers. The orientation is taken modulo 2 pi on the class (class 39 is class 0),
    so both ends of the grid draw the same image.
    """
    grid = torch.as_tensor(np.asarray(classes, dtype=np.int64).reshape(-1, 6))
    out = torch.zeros((len(grid), IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8)
    span, w = IMAGE_SIZE - 2 * _MARGIN, _WINDOW
    ar = torch.arange(w)
    for s in range(0, len(grid), chunk):
        c = grid[s : s + chunk]  # [B, 6]
        scale = (0.5 + 0.1 * c[:, 2].double()).float()[:, None, None]
        theta = (2 * np.pi / 39) * (c[:, 3] % 39).double()  # 2 pi == 0 exactly
        cos, sin = torch.cos(theta).float()[:, None, None], torch.sin(theta).float()[:, None, None]
        cx = _MARGIN + span * c[:, 4].double() / 31  # posX -> columns (right)
        cy = _MARGIN + span * c[:, 5].double() / 31  # posY -> rows (down)
        x0 = (cx.floor().long() - w // 2).clamp(0, IMAGE_SIZE - w)  # window corner [B]
        y0 = (cy.floor().long() - w // 2).clamp(0, IMAGE_SIZE - w)
        cols, rows = x0[:, None] + ar, y0[:, None] + ar  # [B, W]
        dx = (cols.double() + 0.5 - cx[:, None]).float()[:, None, :]  # [B, 1, W]
        dy = (cy[:, None] - rows.double() - 0.5).float()[:, :, None]  # [B, W, 1], up
        u = (cos * dx + sin * dy) / scale  # rotate by -theta, then unscale: [B, W, W]
        v = (-sin * dx + cos * dy) / scale
        inside = _inside(c[:, 1], u, v).to(torch.uint8)
        b = torch.arange(len(c))[:, None, None]
        out[s : s + chunk][b, rows[:, :, None], cols[:, None, :]] = inside
    return out.numpy()


class _LazyImages:
    """Array-like view of all images: indexing renders, nothing is stored."""

    def __init__(self, n: int = N_IMAGES):
        self.shape, self.dtype, self.ndim = (n, IMAGE_SIZE, IMAGE_SIZE), np.dtype(np.uint8), 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        rest = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        idx = np.arange(self.shape[0])[key]
        imgs = render(index_to_latents(np.atleast_1d(idx)))
        imgs = imgs[0] if np.ndim(idx) == 0 else imgs
        return imgs[(Ellipsis,) + rest] if rest else imgs

    def __array__(self, dtype=None, copy=None):  # materialises 3 GB: avoid
        arr = self[:]
        return arr if dtype is None else arr.astype(dtype)


class DSprites:
    """dSprites with the official npz's interface: ``images``, ``latents_values``,
    ``latents_classes``, ``latents_sizes`` (+ ``latents_names``, ``latents_bases``).

    ``DSprites()`` generates images lazily; ``DSprites(path)`` or the ``DSPRITES_NPZ``
    environment variable loads the official file (keys ``imgs``, ``latents_values``,
    ``latents_classes``, optionally ``metadata``) instead. ``render(indices)`` and
    ``sample(batch_size, generator)`` work the same on both.
    """

    def __init__(self, path: Optional[Union[str, Path]] = None):
        path = path if path is not None else os.environ.get(ENV_VAR) or None
        self.path = None if path is None else Path(path)
        self.latents_names, self.latents_bases = LATENTS_NAMES, LATENTS_BASES
        if self.path is None:
            self.latents_sizes = LATENTS_SIZES.copy()
            self.images = _LazyImages()
            self._classes = self._values = None
            return
        with np.load(self.path, allow_pickle=False, encoding="latin1") as z:
            key = "imgs" if "imgs" in z.files else "images"
            self.images = z[key]
            self._classes = z["latents_classes"].astype(np.int64)
            self._values = z["latents_values"].astype(np.float64)
        self.latents_sizes = LATENTS_SIZES.copy()  # metadata is a pickle: not read

    @property
    def source(self) -> str:
        return "generated" if self.path is None else str(self.path)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def latents_classes(self) -> np.ndarray:
        if self._classes is None:
            self._classes = index_to_latents(np.arange(N_IMAGES))
        return self._classes

    @property
    def latents_values(self) -> np.ndarray:
        if self._values is None:
            self._values = _classes_to_values(self.latents_classes)
        return self._values

    def classes_of(self, indices: ArrayLike) -> np.ndarray:
        """``[N]`` indices -> ``[N, 6]`` latent classes (no full table needed when generated)."""
        idx = np.asarray(indices, dtype=np.int64)
        return index_to_latents(idx) if self.path is None else self.latents_classes[idx]

    def render(self, indices: ArrayLike) -> np.ndarray:
        """``[N]`` indices -> ``[N, 64, 64]`` uint8 images."""
        idx = np.asarray(indices, dtype=np.int64)
        return render(index_to_latents(idx)) if self.path is None else np.asarray(self.images[idx], np.uint8)

    def render_classes(self, classes: np.ndarray) -> np.ndarray:
        """``[N, 6]`` latent classes -> ``[N, 64, 64]`` images (a loaded file must be the full grid)."""
        return self.render(latents_to_index(classes)) if self.path is not None else render(classes)

    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None):
        """``batch_size`` uniform draws: ``(images [B, 1, 64, 64] float32 tensor, classes [B, 6])``."""
        idx = torch.randint(len(self), (batch_size,), generator=generator).numpy()
        imgs = torch.from_numpy(self.render(idx).astype(np.float32)).unsqueeze(1)
        return imgs, self.classes_of(idx)
