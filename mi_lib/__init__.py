"""mi_lib: variational bounds of mutual information (Poole et al., ICML 2019), tested.

The package behind the book: bounds as pure functions of a score matrix
(:mod:`mi_lib.bounds`), critics (:mod:`mi_lib.critics`), the Gaussian tasks
(:mod:`mi_lib.data`), training (:mod:`mi_lib.train`) and :func:`estimate_mi` for your
own samples. Convention everywhere: ``scores[i, j] = f(x_i, y_j)``, positives on the
diagonal, MI in nats.
"""

from .bounds import (  # noqa: F401
    dv_lower_bound,
    infonce_lower_bound,
    interpolated_lower_bound,
    js_lower_bound,
    mine_lower_bound,
    nwj_lower_bound,
    smile_lower_bound,
    tuba_lower_bound,
)
from .data import mi_to_rho, rho_to_mi  # noqa: F401
from .registry import available_bounds, get_bound  # noqa: F401

__version__ = "0.1.0"


def __getattr__(name):  # lazy: estimate_mi pulls in training code
    if name in ("estimate_mi", "MIEstimate"):
        from . import estimate

        return getattr(estimate, name)
    raise AttributeError(f"module 'mi_lib' has no attribute {name!r}")
