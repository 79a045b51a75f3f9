"""Fig. 5's claims (latents that each follow one factor; a MIG well above a random encoder's), checked on
the archived ``paper``-profile run (never trains). Skipped, saying so, until the entry is archived
(``scripts/archive_dsprites.py``). The thresholds are the quick profile's (tests/test_quick_claims.py):
the paper gives no number to hold them to."""

import pytest

from mi_lib import publish_dsprites as PD
from mi_lib.experiments import dsprites as E

FOLLOWED = ("scale", "posX", "posY")
MIN_SHARE = 0.15  # the factor's best latent carries at least this share of the factor's entropy
MIN_RATIO = 2.0  # ... and at least this many times its largest share of any other factor
MIG_MARGIN = 0.02
MIG_FACTOR = 5.0


@pytest.fixture(scope="module")
def fig5():
    try:
        return PD.load("paper").results
    except FileNotFoundError:
        pytest.skip(f"{PD.progress_line('paper')} (scripts/archive_dsprites.py)")


SCALE_FINDING = pytest.mark.xfail(
    strict=True,
    reason="finding at paper scale (book/dsprites.md): posX and posY each settle in one latent (0.69 of their "
    "entropy), but the code gives scale up: its best latent carries 0.037 of scale's entropy (probe R^2 0.05), "
    "0.18 of another factor's",
)


@pytest.mark.parametrize("factor", [pytest.param("scale", marks=SCALE_FINDING), "posX", "posY"])
def test_paper_a_latent_follows_each_of_position_and_scale(fig5, factor):
    latent, share, other = E.latent_for_factor(fig5["trained"]["mi_matrix"], factor)
    assert share >= MIN_SHARE, f"z{latent} carries {share:.3f} of {factor}'s entropy"
    assert share >= MIN_RATIO * other, f"z{latent}: {share:.3f} of {factor}, {other:.3f} of another factor"


def test_paper_the_three_factors_have_three_different_latents(fig5):
    assert len({E.latent_for_factor(fig5["trained"]["mi_matrix"], f)[0] for f in FOLLOWED}) == len(FOLLOWED)


def test_paper_mig_well_above_the_random_encoder(fig5):
    trained, random = float(fig5["trained"]["mig"]), float(fig5["random"]["mig"])
    assert trained >= random + MIG_MARGIN and trained >= MIG_FACTOR * random, (trained, random)
