"""Poole et al. Fig. 2's claims, on the archived paper-profile numbers (results/fig2_gaussian_estimates/paper/).

These read the archive and train nothing. A claim whose runs are not archived yet is skipped with the
count of chunks still missing; the archive is filled by ``scripts/archive_fig2.py --profile paper``.
Mean over the last half of each MI level, Gaussian task unless said.
"""

import math

import numpy as np
import pytest

from mi_lib import publish as P
from mi_lib.experiments import gaussian as G

LOG_K = math.log(64)


@pytest.fixture(scope="module")
def paper():
    try:
        got = P.load_fig2("paper", partial=True)
    except G.MissingChunks as e:
        pytest.skip(f"paper-profile Fig. 2 not archived yet: {e}")
    return got.results


def _critic(paper, critic):
    if critic not in set(paper["critics"]):
        done, total, _ = P.archive_status("paper")
        pytest.skip(f"the {critic} critic's paper-profile runs are not archived yet ({done} of {total} chunks)")


def _settled(paper, task, critic, label, level):
    return G.summary(paper)[f"{task}/{critic}/{label}"][f"{level:g}"]


@pytest.mark.parametrize("label", ["NWJ", "TUBA", "JS", "InfoNCE"])
def test_joint_critic_estimates_reach_two_nats(paper, label):
    _critic(paper, "concat")
    assert abs(_settled(paper, "gaussian", "concat", label, 2.0) - 2.0) < 0.3


@pytest.mark.parametrize("label", ["NWJ", "TUBA", "JS"])
def test_joint_critic_estimates_reach_four_nats(paper, label):
    _critic(paper, "concat")
    assert abs(_settled(paper, "gaussian", "concat", label, 4.0) - 4.0) < 0.6


def test_infonce_is_capped_at_log_k_and_reaches_it(paper):
    _critic(paper, "concat")
    rows = (paper["labels"] == "InfoNCE") & (paper["tasks"] == "gaussian")
    assert np.all(paper["estimates"][rows] <= LOG_K + 0.05)
    assert abs(_settled(paper, "gaussian", "concat", "InfoNCE", 10.0) - LOG_K) < 0.5


def test_small_alpha_climbs_above_infonce_at_ten_nats(paper):
    _critic(paper, "concat")
    gap = _settled(paper, "gaussian", "concat", "alpha=0.01", 10.0) - _settled(
        paper, "gaussian", "concat", "InfoNCE", 10.0
    )
    assert gap >= 1.0


@pytest.mark.xfail(
    strict=True,
    reason="finding at paper scale (book/gaussian.md): TNCE at 2 nats with K = 64 averages 1.82 over the level's "
    "second half, 0.18 below the truth: InfoNCE's finite-batch bias with the true critic, no training involved",
)
def test_tnce_is_near_exact_at_two_nats(paper):
    mi, tnce = paper["mi"], paper["tnce"][list(paper["task_names"]).index("gaussian")]
    idx = np.flatnonzero(mi == 2.0)
    assert abs(tnce[idx[len(idx) // 2 :]].mean() - 2.0) < 0.1


@pytest.mark.xfail(
    strict=True,
    reason="finding at paper scale (book/gaussian.md): with the caption's cubic W (entries N(0, 1)) the joint critic "
    "does not learn the cubic task: NWJ averages -57.5 nats (median -51.3) over the 2-nat level's second half, "
    "InfoNCE -0.02, TUBA NaN throughout; the Gaussian task's joint runs meet every claim",
)
def test_cubic_task_joint_nwj_reaches_two_nats(paper):
    _critic(paper, "concat")
    assert abs(_settled(paper, "cubic", "concat", "NWJ", 2.0) - 2.0) < 0.5


@pytest.mark.xfail(
    strict=True,
    reason="finding at paper scale (book/gaussian.md): with the caption's cubic W (entries N(0, 1)) the separable "
    "critic's NWJ and TUBA are -inf from the first step and JS reaches -inf; the Gaussian task's runs are finite",
)
def test_every_separable_estimate_is_finite(paper):
    _critic(paper, "separable")
    rows = paper["critics"] == "separable"
    assert np.isfinite(paper["estimates"][rows]).all()
