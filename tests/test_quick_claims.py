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
# One quick run is one draw: its trajectory depends on the seed and, through Adam's first updates, on how the
# CPU rounds (book/dsprites.md), and whether a latent follows one factor after 600 steps varies from draw to
# draw. So the claim checked is the one every draw shows, on four seeds: the trained code is clearly more
# structured than the same network at its initialisation. That each of scale, posX and posY has its own
# latent is not shown at this scale (the chapter gives the four draws' numbers).
SEEDS = (0, 1, 2, 3)
MIG_RATIO = 1.5  # trained MIG at least this many times the random encoder's, in every seed (2.5 to 5.6 measured)


@pytest.fixture(scope="module")
def fig5_seeds():
    # seed 0 is the notebook's own run and cache, as `reproduce --device cpu` (and CI's `make book`) runs it
    cfg = dataclasses.replace(E.CONFIGS["quick"], device="cpu")
    return {
        s: cached(E.run, dataclasses.replace(cfg, seed=s), CACHE, name="dsprites_fig5" + (f"_seed{s}" if s else ""))
        for s in SEEDS
    }


@pytest.mark.slow
def test_quick_mig_above_the_random_encoder_in_every_seed(fig5_seeds):
    migs = {s: (r["trained"]["mig"], r["random"]["mig"]) for s, r in fig5_seeds.items()}
    assert all(t >= MIG_RATIO * r for t, r in migs.values()), migs


@pytest.mark.slow
def test_quick_the_trained_code_carries_more_of_each_position_than_the_random_one(fig5_seeds):
    """In every seed the best latent for posX and for posY carries more of it than any random latent does."""
    for s, r in fig5_seeds.items():
        for factor in ("posX", "posY"):
            trained = E.latent_for_factor(r["trained"]["mi_matrix"], factor)[1]
            random = E.latent_for_factor(r["random"]["mi_matrix"], factor)[1]
            assert trained > random, (s, factor, trained, random)
