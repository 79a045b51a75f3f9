"""The registry is the one place a bound is wired: a toy bound added there alone appears in Tables 1-2
and Fig. 1's graph, is a Fig. 2 estimator, and trains in a sweep."""

import dataclasses

import numpy as np
import pytest
import torch

from mi_lib import bounds as B
from mi_lib import tables
from mi_lib.data import GaussianTask
from mi_lib.experiments import gaussian as G
from mi_lib.registry import LowerBound, available_bounds, bound_name, estimators, get_bound, register, registered
from mi_lib.train import RunConfig, train_sweep


def _toy_nwj(scores: torch.Tensor) -> torch.Tensor:
    """NWJ written another way, E_p[f] - E_q[e^{f - 1}], so a bug in either form shows up."""
    k = scores.shape[-1]
    off = ~torch.eye(k, dtype=torch.bool)
    return B.diag(scores).mean(-1) - torch.exp(scores - 1.0)[..., off].mean(-1)


TOY = LowerBound(
    name="toy_nwj",
    label="toy NWJ",
    symbol=r"I_\mathrm{toy}",
    fn=_toy_nwj,
    train_value=lambda s, b=None, a=None, state=None: (_toy_nwj(s), None),
    citation="this test",
    parameters=r"$f(x,y)$",
    objective=r"$\mathbb{E}_p[f] - \mathbb{E}_q[e^{f-1}]$",
    optimal_offset=1.0,
    variants=(("toy NWJ", None),),
    parent="tuba",
    approximation="a toy",
)


def test_a_toy_bound_through_the_registry_alone():
    with registered(TOY):
        assert "toy_nwj" in available_bounds()
        assert "toy_nwj" in tables.table1().index and "toy_nwj" in tables.table2().index
        assert "toy_nwj" in {n["name"] for n in tables.graph_nodes()}
        assert estimators()["toy NWJ"] == ("toy_nwj", None)
        cfg = G.Fig2Config()
        assert "toy NWJ" in cfg.estimators and G.cap("toy NWJ", 64) is None
        # it trains in a sweep (autograd, no closed form) exactly as NWJ does with its closed form
        base = RunConfig(
            critic="separable",
            task=GaussianTask(dim=3),
            mi_levels=(1.0,),
            steps_per_level=30,
            hidden_dim=16,
            embed_dim=4,
            batch_size=16,
            seed=3,
        )
        runs = [dataclasses.replace(base, bound="toy_nwj"), dataclasses.replace(base, bound="nwj")]
        res = train_sweep(runs, device="cpu", dtype=torch.float64, progress=False)
        np.testing.assert_allclose(res.estimates[0], res.estimates[1], rtol=1e-9, atol=1e-9)
        # and its optimal-critic offset feeds the Table 1 measurement: NWJ's value at its optimum
        _, summary = tables.measure_table1(["toy_nwj", "nwj"], mi_values=(2.0,), batch_sizes=(32,), reps=4, dim=4)
        assert summary.loc["toy_nwj", "max_std"] == pytest.approx(summary.loc["nwj", "max_std"], rel=1e-9)
    assert "toy_nwj" not in available_bounds()


def test_registering_a_taken_name_or_alias_fails():
    with pytest.raises(ValueError, match="already registered"):
        register(dataclasses.replace(TOY, name="nwj"))
    with pytest.raises(ValueError, match="already registered"):
        register(dataclasses.replace(TOY, name="nce"))


def test_aliases_and_labels():
    assert bound_name("NCE") == bound_name("i_nce") == "infonce"
    assert get_bound("nce").label == "InfoNCE"
    assert get_bound("infonce").cap(64, None) == pytest.approx(np.log(64))
    assert get_bound("nwj").optimal_offset == 1.0 and get_bound("dv").optimal_offset == 0.0
