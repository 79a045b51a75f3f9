r"""Diagnostics of :func:`mi_lib.estimate_mi`: the reasons a number should not be trusted.

Each check compares the estimate with something it should not be near: its own trend (training had not
levelled off), the spread of the held-out blocks, the sign of the estimate, the bound's cap (InfoNCE
cannot exceed :math:`\log K`), :math:`\log N` of the test split (no distribution-free lower bound from
:math:`N` samples can certify much more than :math:`\log N`, McAllester & Stratos 2020), the bound on
training data (overfitting), and x being a copy of y (the MI of continuous data is then infinite, so any
finite number is wrong).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

__all__ = ["Diagnostics", "diagnose"]

NEAR_CAP = 0.9  # an estimate above this fraction of a cap is pressed against it
LOG_N_MARGIN = 1.0  # nats below log N_test where the sample-size limit starts to bite
NOISY_NATS, NOISY_FRACTION = 0.1, 0.1  # a standard error above both is too noisy to report
OVERFIT_NATS = 0.15  # training minus held-out value that counts as overfitting (and 3 standard errors)


@dataclass
class Diagnostics:
    """Why (or whether) to trust an :class:`~mi_lib.estimate.MIEstimate`; ``reasons`` is empty when nothing is wrong."""

    converged: bool  # training stopped on a plateau of the validation bound, not at max_steps while rising
    val_gain_last: float  # nats the validation bound rose over the last `patience` checks
    cap: Optional[float]  # the bound's ceiling for the test block size, or None
    cap_fraction: Optional[float]  # estimate / cap
    log_n_test: float  # log of the test split's size
    train_value: float  # the same bound on training pairs, with the same critic and constant
    overfit_gap: float  # train_value - estimate
    identical: bool  # a column of y is a monotone copy of a column of x
    reasons: List[str] = field(default_factory=list)

    @property
    def trustworthy(self) -> bool:
        """Whether no check fired."""
        return not self.reasons


def diagnose(
    estimate: float,
    stderr: float,
    train_value: float,
    val_steps: np.ndarray,
    val_history: np.ndarray,
    max_steps: int,
    steps_run: int,
    cap: Optional[float],
    n_test: int,
    identical: bool,
    min_delta: float,
    patience: int,
) -> Diagnostics:
    """Run every check on one fit and collect the reasons to distrust it, each in words a user can act on."""
    reasons: List[str] = []
    if identical:
        reasons.append(
            "a column of y is a monotone copy of a column of x, so I(X;Y) is infinite for continuous data "
            "and any finite estimate is meaningless"
        )
    if not all(math.isfinite(v) for v in (estimate, stderr, train_value)):
        reasons.append("the estimate or its standard error is not finite")
    gain = float(val_history[-1] - val_history[-1 - patience]) if len(val_history) > patience else math.inf
    converged = steps_run < max_steps or gain <= max(patience * min_delta, 2 * stderr)
    if not converged:
        rose = (
            f"rose {gain:.3f} nats over the last {patience} checks"
            if math.isfinite(gain)
            else f"had only {len(val_history)} checks, too few to see a plateau"
        )
        reasons.append(
            f"training had not converged: at max_steps={max_steps} the validation bound {rose}; raise max_steps"
        )
    cap_fraction = None if cap is None else estimate / cap
    if cap is not None and cap_fraction is not None and cap_fraction > NEAR_CAP:
        reasons.append(
            f"the estimate {estimate:.2f} is {100 * cap_fraction:.0f}% of the bound's cap {cap:.2f}, "
            f"so the true MI may be much higher; use a bound without a cap (nwj) or larger eval blocks"
        )
    log_n = math.log(n_test)
    if estimate > log_n - LOG_N_MARGIN:
        reasons.append(
            f"the estimate {estimate:.2f} is close to log N_test = {log_n:.2f}: from {n_test} held-out "
            f"pairs no lower bound can certify much more, so the true MI may be higher"
        )
    if math.isfinite(stderr) and stderr > max(NOISY_NATS, NOISY_FRACTION * abs(estimate)):
        reasons.append(
            f"the held-out blocks disagree: standard error {stderr:.3f} on an estimate of {estimate:.3f}; "
            f"a few pairs dominate the bound, use more samples or bound='dv'"
        )
    if estimate < -2 * stderr:
        reasons.append(
            f"the estimate {estimate:.3f} is below zero by more than two standard errors: the critic "
            f"generalises worse than a constant, so it says nothing about I(X;Y)"
        )
    gap = train_value - estimate
    if gap > max(OVERFIT_NATS, 3 * stderr):
        reasons.append(
            f"the critic overfits: {train_value:.3f} nats on training pairs against {estimate:.3f} "
            f"held out; use more samples, a smaller critic or fewer steps"
        )
    return Diagnostics(converged, gain, cap, cap_fraction, log_n, train_value, gap, identical, reasons)
