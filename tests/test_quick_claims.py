"""The captions' claims at the `quick` profile, with the looser tolerances the chapters state.

Fig. 2 (book/gaussian.md, "What the quick run shows"): the quick profile's own runs, restricted to the
panels the claims are about (the joint critic's NWJ, TUBA, JS and InfoNCE on the Gaussian task, first
two MI levels; every separable run). A run's numbers do not depend on which runs share its sweep (same
seed, same batches), so these are the figure's numbers up to float rounding. Statistics over the second
half of each MI level, as in ``mi_lib.experiments.gaussian.summary``.

Fig. 5 (book/dsprites.md): the quick profile of the notebook, through the notebook's own cache
(``results_cache/``), so after ``make book`` nothing is trained here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mi_lib.cache import cached
from mi_lib.experiments import dsprites as E
from mi_lib.experiments import gaussian as G
from mi_lib.profiles import override

CACHE = Path(__file__).resolve().parents[1] / "results_cache"  # the notebooks' cache_dir

# ----------------------------------------------------------------------------- Fig. 2
JOINT_AT_2 = ("NWJ", "TUBA", "JS", "InfoNCE")
JOINT_AT_4 = ("NWJ", "TUBA", "JS")  # InfoNCE is capped at log 64 = 4.16 and biased low there (TNCE too)
TOL_2_NATS = 0.5  # |mean - 2| over the second half of the 2-nat level (paper-scale claim: 0.3)
TOL_4_NATS = 0.75  # |mean - 4| over the second half of the 4-nat level (paper-scale claim: 0.6)
MAX_NEGATIVE = 0.1  # largest share of a level's settled steps a separable estimate may spend below 0 nats


@pytest.fixture(scope="module")
def fig2_joint():
    cfg = override(
        G.CONFIGS["quick"],
        device="cpu",
        critics=("concat",),
        tasks=("gaussian",),
        estimators=JOINT_AT_2,
        mi_levels=G.CONFIGS["quick"].run.mi_levels[:2],
    )
    return G.summary(G.run(cfg, cache_dir=CACHE, progress=False))


@pytest.fixture(scope="module")
def fig2_separable():
    return G.run(override(G.CONFIGS["quick"], device="cpu", critics=("separable",)), cache_dir=CACHE, progress=False)


def _settled(results, row):
    """Per MI level: the estimates of the second half of the level."""
    mi, est = results["mi"], results["estimates"][row]
    out = []
    for level in np.unique(mi):
        idx = np.flatnonzero(mi == level)
        out.append(est[idx[len(idx) // 2 :]])
    return out


def test_quick_levels_are_the_papers():
    assert G.CONFIGS["quick"].run.mi_levels[:2] == (2.0, 4.0)


@pytest.mark.slow
@pytest.mark.parametrize("label", JOINT_AT_2)
def test_quick_joint_critic_reaches_two_nats(fig2_joint, label):
    assert abs(fig2_joint[f"gaussian/concat/{label}"]["2"] - 2.0) < TOL_2_NATS


@pytest.mark.slow
@pytest.mark.parametrize("label", JOINT_AT_4)
def test_quick_joint_critic_reaches_four_nats(fig2_joint, label):
    assert abs(fig2_joint[f"gaussian/concat/{label}"]["4"] - 4.0) < TOL_4_NATS


@pytest.mark.slow
def test_quick_separable_estimates_are_finite(fig2_separable):
    bad = [
        f"{t}/{lab}"
        for t, lab, e in zip(*(fig2_separable[k] for k in ("tasks", "labels", "estimates")))
        if not np.isfinite(e).all()
    ]
    assert not bad, f"non-finite separable estimates: {bad}"


@pytest.mark.slow
def test_quick_separable_estimates_do_not_collapse_on_the_gaussian_task(fig2_separable):
    """A collapsed run spends its steps below zero, or falls back below what it had learned at 2 nats.

    Single minibatches far below zero are the exponential bounds' variance, which the figure shows as
    spikes; they count only through the share of steps below zero.
    """
    problems = []
    for row, (task, label) in enumerate(zip(fig2_separable["tasks"], fig2_separable["labels"])):
        if task != "gaussian":
            continue
        levels = _settled(fig2_separable, row)
        negative = [float(np.mean(v < 0)) for v in levels]
        medians = [float(np.median(v)) for v in levels]
        if max(negative) > MAX_NEGATIVE:
            problems.append(f"{label}: share below 0 per level {np.round(negative, 3)}")
        if min(medians[1:]) < medians[0]:
            problems.append(f"{label}: medians per level {np.round(medians, 2)}")
    assert not problems, "; ".join(problems)


# ----------------------------------------------------------------------------- Fig. 5
FOLLOWED = ("scale", "posX", "posY")
MIN_SHARE = 0.15  # the factor's best latent carries at least this share of the factor's entropy (MIG's matrix)
MIN_RATIO = 2.0  # ... and at least this many times its largest share of any other factor
MIG_MARGIN = 0.02  # trained MIG above the random encoder's by at least this much
MIG_FACTOR = 5.0  # ... and at least this many times it


@pytest.fixture(scope="module")
def fig5():
    # the notebook's call and cache, as `reproduce --device cpu` (and CI's `make book DEVICE=cpu`) runs it
    return cached(E.run, dataclasses.replace(E.CONFIGS["quick"], device="cpu"), CACHE, name="dsprites_fig5")


POSY_FINDING = pytest.mark.xfail(
    strict=True,
    reason="finding at quick scale (book/dsprites.md): the latent with the most about posY (0.23 of its entropy) "
    "also carries 0.12 of scale's, under twice as much; several latents mix posX and posY",
)


@pytest.mark.slow
@pytest.mark.parametrize("factor", ["scale", "posX", pytest.param("posY", marks=POSY_FINDING)])
def test_quick_a_latent_follows_each_of_position_and_scale(fig5, factor):
    latent, share, other = E.latent_for_factor(fig5["trained"]["mi_matrix"], factor)
    assert share >= MIN_SHARE, f"z{latent} carries {share:.3f} of {factor}'s entropy"
    assert share >= MIN_RATIO * other, f"z{latent}: {share:.3f} of {factor}, {other:.3f} of another factor"


@pytest.mark.slow
def test_quick_the_three_factors_have_three_different_latents(fig5):
    latents = {E.latent_for_factor(fig5["trained"]["mi_matrix"], f)[0] for f in FOLLOWED}
    assert len(latents) == len(FOLLOWED)


@pytest.mark.slow
def test_quick_mig_well_above_the_random_encoder(fig5):
    trained, random = fig5["trained"]["mig"], fig5["random"]["mig"]
    assert trained >= random + MIG_MARGIN and trained >= MIG_FACTOR * random, (trained, random)
