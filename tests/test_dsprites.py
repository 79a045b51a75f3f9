"""dSprites: the generator's grid, ordering and geometry; the npz loader; the Fig. 5 experiment."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mi_lib.datasets import dsprites as D
from mi_lib.experiments import dsprites as E


def _classes(**fixed):
    """One latent row, defaults at the middle of the grid."""
    c = dict(color=0, shape=0, scale=5, orientation=0, posX=16, posY=16)
    c.update(fixed)
    return np.array([[c[n] for n in D.LATENTS_NAMES]])


def _com(img):
    """Centre of mass (row, col) of a binary image."""
    rows, cols = np.nonzero(img)
    return rows.mean(), cols.mean()


# --------------------------------------------------------------------------- grid and ordering
def test_grid_matches_the_official_layout():
    assert D.N_IMAGES == 737_280
    assert list(D.LATENTS_SIZES) == [1, 3, 6, 40, 32, 32]
    assert list(D.LATENTS_BASES) == [737280, 245760, 40960, 1024, 32, 1]
    grid = D.latents_values_grid()
    assert np.allclose(grid[2], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert grid[3][0] == 0.0 and grid[3][-1] == 2 * np.pi and len(grid[3]) == 40
    assert np.allclose(grid[4], np.arange(32) / 31) and np.allclose(grid[5], grid[4])


def test_index_latents_round_trip_and_last_factor_fastest():
    rng = np.random.default_rng(0)
    idx = np.concatenate([[0, 1, 31, 32, D.N_IMAGES - 1], rng.integers(0, D.N_IMAGES, 5000)])
    cls = D.index_to_latents(idx)
    assert np.array_equal(D.latents_to_index(cls), idx)
    # second implementation: the official table is itertools.product over the factors in order
    assert np.array_equal(
        D.index_to_latents(np.arange(64))[:, 4:], np.stack(np.unravel_index(np.arange(64), (32, 32)), 1)
    )
    assert list(D.index_to_latents(1)) == [0, 0, 0, 0, 0, 1]  # posY varies fastest
    assert list(D.index_to_latents(32)) == [0, 0, 0, 0, 1, 0]
    assert list(D.index_to_latents(D.N_IMAGES - 1)) == [0, 2, 5, 39, 31, 31]
    with pytest.raises(ValueError):
        D.index_to_latents(D.N_IMAGES)


def test_lazy_interface_like_the_npz():
    data = D.DSprites()
    assert data.images.shape == (737_280, 64, 64) and data.images.dtype == np.uint8
    img = data.images[12345]
    assert img.shape == (64, 64) and img.dtype == np.uint8 and set(np.unique(img)) <= {0, 1}
    assert np.array_equal(data.images[[5, 6]], data.render([5, 6]))
    assert data.latents_classes.shape == (737_280, 6) and data.latents_values.shape == (737_280, 6)
    assert np.allclose(data.latents_values[data.latents_bases[2] * 5], [1, 1, 1.0, 0, 0, 0])
    x, c = data.sample(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 1, 64, 64) and x.dtype == torch.float32 and c.shape == (16, 6)
    x2, c2 = data.sample(16, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2) and np.array_equal(c, c2)  # deterministic


# --------------------------------------------------------------------------- geometry
def test_every_sprite_non_empty_and_inside_the_frame():
    rng = np.random.default_rng(1)
    extremes = np.array(
        [[0, s, 5, o, x, y] for s in range(3) for o in range(0, 40, 3) for x in (0, 31) for y in (0, 31)]
    )
    cls = np.concatenate([extremes, D.index_to_latents(rng.integers(0, D.N_IMAGES, 3000))])
    imgs = D.render(cls)
    assert (imgs.sum((1, 2)) > 0).all()
    border = np.concatenate([imgs[:, 0, :], imgs[:, -1, :], imgs[:, :, 0], imgs[:, :, -1]], axis=1)
    assert border.sum() == 0  # nothing touches the edge, so nothing is cut off


def _reference_render(c):
    """Full-frame float64 rendering, no window: a second implementation of the geometry."""
    grid = D.latents_values_grid()
    pix = np.arange(64) + 0.5
    cx = D._MARGIN + (64 - 2 * D._MARGIN) * grid[4][c[4]]
    cy = D._MARGIN + (64 - 2 * D._MARGIN) * grid[5][c[5]]
    th, s = grid[3][c[3]], grid[2][c[2]]
    dx, dy = pix[None, :] - cx, cy - pix[:, None]
    u = (np.cos(th) * dx + np.sin(th) * dy) / s
    v = (-np.sin(th) * dx + np.cos(th) * dy) / s
    return D._inside(torch.tensor([c[1]]), torch.tensor(u[None]), torch.tensor(v[None]))[0].numpy()


def test_windowed_render_matches_full_frame_reference():
    cls = D.index_to_latents(np.random.default_rng(2).integers(0, D.N_IMAGES, 200))
    fast = D.render(cls)
    ref = np.stack([_reference_render(c) for c in cls])
    assert (fast != ref).mean() < 1e-3  # only float32-vs-float64 ties on the boundary


def test_posX_moves_columns_posY_moves_rows():
    for shape in range(3):
        r0, c0 = _com(D.render(_classes(shape=shape, posX=0, posY=16))[0])
        r1, c1 = _com(D.render(_classes(shape=shape, posX=31, posY=16))[0])
        assert c1 - c0 > 30 and abs(r1 - r0) < 0.5  # posX: image axis 1 (columns), to the right
        r0, c0 = _com(D.render(_classes(shape=shape, posX=16, posY=0))[0])
        r1, c1 = _com(D.render(_classes(shape=shape, posX=16, posY=31))[0])
        assert r1 - r0 > 30 and abs(c1 - c0) < 0.5  # posY: image axis 0 (rows), downwards
    cols = [_com(D.render(_classes(posX=k))[0])[1] for k in range(32)]
    assert np.all(np.diff(cols) > 0)


def test_area_grows_with_scale_roughly_quadratically():
    for shape in range(3):
        areas = np.array([D.render(_classes(shape=shape, scale=k))[0].sum() for k in range(6)])
        assert np.all(np.diff(areas) > 0)
        assert 3.3 < areas[-1] / areas[0] < 4.7  # (1.0 / 0.5)^2 = 4, up to pixelisation


def test_shapes_differ_and_orientation_rotates():
    imgs = D.render(np.concatenate([_classes(shape=s) for s in range(3)]))
    assert (imgs[0] != imgs[1]).sum() > 20 and (imgs[0] != imgs[2]).sum() > 20 and (imgs[1] != imgs[2]).sum() > 20
    e0, e10 = D.render(np.concatenate([_classes(shape=1, orientation=0), _classes(shape=1, orientation=10)]))
    assert np.ptp(np.nonzero(e0)[1]) > np.ptp(np.nonzero(e0)[0])  # ellipse wide at 0 rad
    assert np.ptp(np.nonzero(e10)[0]) > np.ptp(np.nonzero(e10)[1])  # tall at ~92 deg


def test_orientation_both_ends_give_the_same_image():
    rng = np.random.default_rng(3)
    cls = D.index_to_latents(rng.integers(0, D.N_IMAGES, 300))
    first, last = cls.copy(), cls.copy()
    first[:, 3], last[:, 3] = 0, 39
    assert np.array_equal(D.render(first), D.render(last))


# --------------------------------------------------------------------------- official npz
def test_loads_an_official_style_npz(tmp_path, monkeypatch):
    idx = np.array([0, 1, 40960, 737279])
    cls = D.index_to_latents(idx)
    vals = np.stack([D.latents_values_grid()[k][cls[:, k]] for k in range(6)], 1)
    imgs = (np.arange(4 * 64 * 64).reshape(4, 64, 64) % 2).astype(np.uint8)
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    np.savez(path, imgs=imgs, latents_values=vals, latents_classes=cls)
    for data in (D.DSprites(path), None):
        if data is None:
            monkeypatch.setenv("DSPRITES_NPZ", str(path))
            data = D.DSprites()
        assert data.source == str(path)
        assert data.images.shape == (4, 64, 64) and list(data.latents_sizes) == [1, 3, 6, 40, 32, 32]
        assert np.array_equal(data.render([2, 0]), imgs[[2, 0]])
        assert np.array_equal(data.latents_classes, cls) and np.allclose(data.latents_values, vals)
        x, c = data.sample(8, torch.Generator().manual_seed(0))
        assert x.shape == (8, 1, 64, 64) and set(map(tuple, c)) <= set(map(tuple, cls))


# --------------------------------------------------------------------------- experiment
def test_neighbours_differ_by_one_step_of_one_ordered_factor():
    rng = np.random.default_rng(4)
    cls = D.index_to_latents(rng.integers(0, D.N_IMAGES, 2000))
    nb = E.neighbour_classes(cls, rng)
    diff = nb - cls
    assert ((diff != 0).sum(1) == 1).all() and (diff[:, :2] == 0).all()
    d = np.abs(diff).max(1)
    assert np.all((d == 1) | ((d == 39) & (np.abs(diff[:, 3]) == 39)))  # orientation wraps
    assert (nb >= 0).all() and (nb < D.LATENTS_SIZES).all()


def test_mig_and_probe_on_known_codes():
    cls = E.eval_classes(2, 0)
    perfect = np.stack([cls[:, 4] / 31, cls[:, 5] / 31], 1)  # one latent per position factor
    mig, mi = E.mutual_information_gap(perfect, cls, 32)
    assert np.allclose(mi[:, 3:], np.eye(2), atol=1e-9) and np.allclose(
        mi[:, :3], 0, atol=0.12
    )  # plug-in MI bias, ~cells / 2N
    assert mig == pytest.approx(0.4, abs=0.01)  # 2 of 5 factors, gap 1 each
    mixed = np.stack([perfect.sum(1), perfect[:, 0] - perfect[:, 1]], 1)  # rotated: linear info, no gap
    assert E.mutual_information_gap(mixed, cls, 32)[0] < 0.2
    assert np.allclose(E.linear_probe(mixed, cls)[3:], 1.0)


@pytest.fixture(scope="module")
def smoke_results():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return E.run(dataclasses.replace(E.CONFIGS["smoke"], device="cpu"))


def test_training_beats_the_random_encoder_on_position(smoke_results):
    trained, random = smoke_results["trained"]["probe"], smoke_results["random"]["probe"]
    assert trained[3] > random[3] + 0.2 and trained[4] > random[4] + 0.2  # posX, posY R^2
    assert trained[3] > 0.7 and trained[4] > 0.7
    assert smoke_results["history"]["mi"][-20:].mean() > smoke_results["history"]["mi"][:20].mean() + 0.5


def test_results_shapes(smoke_results):
    r = smoke_results["trained"]
    assert r["curves"]["posX"].shape == (10, 32) and r["curves"]["orientation"].shape == (10, 40)
    assert r["heatmaps"].shape == (10, 32, 32) and r["mi_matrix"].shape == (10, 5)
    assert np.isfinite(r["mig"]) and r["probe"].shape == (5,)


def test_figures_build(smoke_results):
    import matplotlib.pyplot as plt

    from mi_lib.figures import dsprites as F

    for fig in (
        F.activation_curves(smoke_results),
        F.position_heatmaps(smoke_results),
        F.disentanglement_scores(smoke_results),
        F.sprite_grid(D.render(_classes()), _classes()),
    ):
        assert len(fig.axes) > 0
        plt.close(fig)


def test_pairwise_hsic_sees_nonlinear_dependence():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(256, generator=g) * 2 - 1, torch.rand(256, generator=g) * 2 - 1
    h = E.pairwise_hsic(torch.stack([a, a, b, a**2], 1))
    assert torch.allclose(torch.diagonal(h), torch.ones(4)) and h[0, 1] == pytest.approx(1.0, abs=1e-5)
    assert h[0, 2] < 0.05 and h[0, 3] > 0.2  # a and a^2 are uncorrelated but dependent


def test_l1_smoothness_charges_a_rotated_code_more():
    g = torch.Generator().manual_seed(0)
    step = torch.zeros(256, 2)
    step[:, 0] = torch.rand(256, generator=g) * 0.1  # one factor moves latent 0 only
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    rotated = step @ torch.tensor([[c, -s], [s, c]], dtype=torch.float32)
    zero = torch.zeros_like(step)
    l2 = [E.smoothness(v, zero, "l2") for v in (step, rotated)]
    l1 = [E.smoothness(v, zero, "l1") for v in (step, rotated)]
    assert l2[0] == pytest.approx(float(l2[1]), rel=1e-5)  # the squared distance cannot tell them apart
    assert l1[1] / l1[0] == pytest.approx(np.sqrt(2), rel=1e-5)


def test_minibatch_tc_sees_a_copied_latent():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(128, generator=g) * 2 - 1, torch.rand(128, generator=g) * 2 - 1
    sigma = 0.1
    independent, copied = torch.stack([a, b], 1), torch.stack([a, a], 1)
    tc = [E.minibatch_tc(mu, mu + sigma * torch.randn(mu.shape, generator=g), sigma) for mu in (independent, copied)]
    assert float(tc[1]) > float(tc[0]) + 0.8  # two noisy copies share about a nat; independent latents ~0
    with pytest.raises(ValueError):
        dataclasses.replace(E.CONFIGS["quick"], smooth_norm="l3")


def test_training_length_study_evaluates_the_run_mi_lib_trains(tmp_path):
    """scripts/dsprites_training_length.py: chunks give the uninterrupted run; each evaluation is the figure's."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import dsprites_training_length as S

    torch.set_num_threads(1)
    res = S.run("smoke", steps=40, every=20, progress=False)
    assert [e["step"] for e in res["evaluations"]] == [20, 40]
    cfg = dataclasses.replace(E.CONFIGS["smoke"], steps=40, device="cpu")
    data = D.DSprites()
    enc, random_enc, _ = E.train(cfg, data, torch.device("cpu"))
    assert res["evaluations"][-1] == {"step": 40, **S.summary(E.evaluate(enc, data, cfg, torch.device("cpu")))}
    assert res["random_encoder"] == S.summary(E.evaluate(random_enc, data, cfg, torch.device("cpu")))
    assert res["evaluations"][0] != res["evaluations"][1]
    assert [b["steps"] for b in res["training_medians"]] == [[0, 20], [20, 40]]
    out = tmp_path / "t.json"
    assert (
        S.main(["--profile", "smoke", "--steps", "10", "--every", "10", "--set", "beta_tc=5", "--out", str(out)]) == 0
    )
    written = json.loads(out.read_text())
    assert (written["config"]["steps"], written["config"]["beta_tc"], written["changes"]) == (10, 5.0, {"beta_tc": 5.0})
    assert S.overrides(["disc_steps=2", "smooth_norm=l2"]) == {"disc_steps": 2, "smooth_norm": "l2"}
    for bad in (["beta_tc"], ["no_such_field=1"], ["steps=5"]):
        with pytest.raises(ValueError, match="FIELD=VALUE"):
            S.overrides(bad)
    with pytest.raises(ValueError, match="positive"):
        S.run("smoke", steps=0, every=20)
    # a saved state of the profile's own run, part way through: the same encoder as the study's at step 20
    ck = tmp_path / "checkpoint.pt"
    smoke = dataclasses.replace(E.CONFIGS["smoke"], device="cpu")
    E.train(smoke, data, torch.device("cpu"), checkpoint=ck, checkpoint_every=20, stop_after=20)
    ev = S.evaluate_checkpoint("smoke", ck)
    assert (ev["step"], ev["of_steps"]) == (20, smoke.steps)
    assert {k: ev[k] for k in res["evaluations"][0] if k != "step"} == {
        k: v for k, v in res["evaluations"][0].items() if k != "step"
    }
    with pytest.raises(ValueError, match="not a checkpoint of the 'quick' profile"):
        S.evaluate_checkpoint("quick", ck)
