"""Figures: the pixels and lines they draw, not just that they draw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tissuefate.errors import InputError
from tissuefate.reporting import figures


def test_overlay_colours_at_known_voxels():
    bg = np.array([[0.0, 50.0, 100.0], [25.0, 75.0, 100.0]])
    truth = np.array([[1, 1, 0], [0, 0, 0]], bool)
    pred = np.array([[1, 0, 1], [0, 0, 0]], bool)
    rgb = figures.overlay_rgb(bg, truth, pred, window=(0.0, 100.0))
    assert rgb.shape == (2, 3, 3)
    assert tuple(rgb[0, 0]) == figures.TRUE_POSITIVE_RGB == (0.0, 1.0, 0.0)
    assert tuple(rgb[0, 1]) == figures.FALSE_NEGATIVE_RGB == (0.0, 0.0, 1.0)
    assert tuple(rgb[0, 2]) == figures.FALSE_POSITIVE_RGB == (1.0, 0.0, 0.0)
    assert tuple(rgb[1, 0]) == (0.25, 0.25, 0.25)  # untouched background stays grey
    assert tuple(rgb[1, 1]) == (0.75, 0.75, 0.75)
    half = figures.overlay_rgb(bg, truth, pred, window=(0.0, 100.0), alpha=0.5)
    np.testing.assert_allclose(half[0, 1], [0.25, 0.25, 0.75])  # 0.5 * grey 0.5 + 0.5 * blue
    with pytest.raises(InputError):
        figures.overlay_rgb(bg, truth[:, :2], pred)


def test_axial_display_orientation():
    vol = np.zeros((4, 5, 3))
    vol[3, 4, 1] = 1.0  # patient's right (high x), anterior (high y)
    radio = figures.axial_display(vol, 1, radiological=True)
    neuro = figures.axial_display(vol, 1, radiological=False)
    assert radio.shape == (5, 4)
    assert radio[0, 0] == 1.0  # top left: right-anterior in radiological view
    assert neuro[0, 3] == 1.0  # top right in neurological view


def test_largest_lesion_slice():
    mask = np.zeros((4, 4, 5), bool)
    mask[:2, :2, 1] = True
    mask[:3, :3, 3] = True
    assert figures.largest_lesion_slice(mask) == 3
    assert figures.largest_lesion_slice(np.zeros((2, 2, 6), bool)) == 3


def test_overlay_figure_image_pixels():
    shape = (6, 7, 4)
    bg = np.full(shape, 10.0)
    truth = np.zeros(shape, bool)
    truth[1:3, 2:4, 2] = True
    pred = np.zeros(shape, bool)
    pred[2:4, 2:4, 2] = True
    fig = figures.overlay_figure(bg, truth, {"pretraining": pred, "thresholding": np.zeros(shape, bool)}, alpha=1.0)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["Pretraining", "Thresholding"]
    image = np.asarray(fig.axes[0].images[0].get_array())
    expected_truth = figures.axial_display(truth, 2)
    expected_pred = figures.axial_display(pred, 2)
    tp = np.argwhere(expected_truth & expected_pred)[0]
    fn = np.argwhere(expected_truth & ~expected_pred)[0]
    fp = np.argwhere(~expected_truth & expected_pred)[0]
    assert tuple(image[tuple(tp)]) == figures.TRUE_POSITIVE_RGB
    assert tuple(image[tuple(fn)]) == figures.FALSE_NEGATIVE_RGB
    assert tuple(image[tuple(fp)]) == figures.FALSE_POSITIVE_RGB
    missed = np.asarray(fig.axes[1].images[0].get_array())
    assert (missed[expected_truth] == figures.FALSE_NEGATIVE_RGB).all()
    fig.canvas.draw()  # renders without a display


def _write(path, data):
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), np.diag([4.0, 4.0, 4.0, 1.0])), str(path))


def test_fig3_overlay_is_drawn_over_the_followup_flair(tmp_path):
    """Paper Fig 3: the follow-up FLAIR in MNI under TP green, FN blue, FP red; without one,
    the baseline DWI, and the figure says so."""
    from tissuefate.io import derivatives
    from tissuefate.jobs.evaluation import overlay_background

    shape, k = (6, 7, 4), 2
    rng = np.random.default_rng(0)
    dwi = rng.uniform(0.5, 1.5, shape)
    flair = rng.uniform(100.0, 900.0, shape)
    truth = np.zeros(shape, bool)
    truth[1:3, 2:4, k] = True
    flair[truth] = 1500.0  # the final infarct is bright on FLAIR
    pred = np.zeros(shape, bool)
    pred[2:4, 2:4, k] = True
    _write(derivatives.preproc_map(tmp_path, "01", "DWI"), dwi)
    background, what = overlay_background(tmp_path, "01")
    assert what == "baseline DWI (no follow-up FLAIR)"
    np.testing.assert_allclose(background, dwi, rtol=1e-6)
    _write(derivatives.flair_map(tmp_path, "01"), flair)
    background, what = overlay_background(tmp_path, "01")
    assert what == "follow-up FLAIR"
    np.testing.assert_allclose(background, flair, rtol=1e-6)

    fig = figures.overlay_figure(background, truth, {"pretraining": pred}, alpha=1.0, background_label=what)
    assert fig.legends[0].get_title().get_text() == "over the follow-up FLAIR"
    image = np.asarray(fig.axes[0].images[0].get_array())
    t, p = figures.axial_display(truth, k), figures.axial_display(pred, k)
    assert (image[t & p] == figures.TRUE_POSITIVE_RGB).all() and (t & p).any()
    assert (image[t & ~p] == figures.FALSE_NEGATIVE_RGB).all() and (t & ~p).any()
    assert (image[~t & p] == figures.FALSE_POSITIVE_RGB).all() and (~t & p).any()
    # Everywhere else: the FLAIR's grey levels, not the DWI's.
    rest = ~(t | p)
    expected = figures.grey_levels(figures.axial_display(flair, k))
    np.testing.assert_allclose(image[rest], np.repeat(expected[rest][:, None], 3, axis=1), rtol=1e-6)
    assert not np.allclose(image[rest][:, 0], figures.grey_levels(figures.axial_display(dwi, k))[rest])


def test_bland_altman_lines_at_the_right_heights():
    pred, true = [10.0, 20.0, 30.0, np.nan], [8.0, 21.0, 25.0, 4.0]
    s = figures.bland_altman_stats(pred, true)
    # differences 2, -1, 5: mean 2, SD 3
    assert (s["n"], s["mean_diff"], s["sd_diff"]) == (3, 2.0, 3.0)
    assert (s["loa_low"], s["loa_high"]) == pytest.approx((2 - 1.96 * 3, 2 + 1.96 * 3))
    fig = figures.new_figure(4, 4)
    ax = fig.subplots()
    figures.plot_bland_altman(ax, pred, true)
    lines = {line.get_label(): line for line in ax.lines}
    assert list(lines["mean difference"].get_ydata()) == [2.0, 2.0]
    assert list(lines["limits of agreement"].get_ydata()) == pytest.approx([2 - 5.88, 2 - 5.88])
    heights = sorted(line.get_ydata()[0] for line in ax.lines)
    assert heights == pytest.approx([2 - 5.88, 0.0, 2.0, 2 + 5.88])
    points = ax.collections[0].get_offsets()
    np.testing.assert_allclose(points, [[9.0, 2.0], [20.5, -1.0], [27.5, 5.0]])


def test_volume_scatter_points_and_identity_line():
    fig = figures.new_figure(4, 4)
    ax = fig.subplots()
    figures.plot_volume_scatter(ax, [12.0, 3.0], [10.0, 5.0])
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[10.0, 12.0], [5.0, 3.0]])  # (true, predicted)
    identity = ax.lines[0]
    assert list(identity.get_xdata()) == list(identity.get_ydata())
    assert ax.get_xlim() == ax.get_ylim()


def _per_case():
    rng = np.random.default_rng(0)
    rows = []
    for target in ("tissue_at_risk", "ischemic_core"):
        true = rng.gamma(2, 20, 8)
        for approach in ("pretraining", "separate", "thresholding"):
            pred = true * rng.uniform(0.7, 1.3, 8)
            rows += [{"participant_id": f"sub-{i}", "target": target, "approach": approach,
                      "volume_pred_ml": p, "volume_true_ml": t} for i, (p, t) in enumerate(zip(pred, true))]
    return pd.DataFrame(rows)


def test_volume_agreement_figures():
    df = _per_case()
    fig = figures.volume_agreement_figure(df, "ischemic_core", "separate")
    assert "Ischemic core, Separate (n = 8, ρc cube root = " in fig.get_suptitle()
    grid = figures.volume_agreement_grid(df, "bland_altman")
    assert len(grid.axes) == 6 and grid.axes[0].get_title() == "Tissue at risk: Pretraining"
    cell = df[(df.target == "ischemic_core") & (df.approach == "thresholding")]
    mean_line = [ln for ln in grid.axes[5].lines if ln.get_label() == "mean difference"][0]
    assert mean_line.get_ydata()[0] == pytest.approx((cell.volume_pred_ml - cell.volume_true_ml).mean())
    assert len(figures.volume_agreement_grid(df, "scatter").axes) == 6
    with pytest.raises(InputError):
        figures.volume_agreement_figure(df, "ischemic_core", "nonexistent")


def test_mismatch_figure_outlines_the_regions():
    shape = (20, 20, 3)
    bg = np.ones(shape)
    tar = np.zeros(shape, bool)
    tar[4:14, 5:15, 1] = True
    core = np.zeros(shape, bool)
    core[6:9, 8:11, 1] = True
    fig = figures.mismatch_figure(bg, {"pretraining": (tar, core, 11.8), "thresholding": (tar, np.zeros(shape, bool),
                                                                                          20.0)})
    ax = fig.axes[0]
    assert ax.get_title() == "Pretraining: mismatch ratio 11.8"
    assert fig.axes[1].get_title() == "Thresholding: mismatch ratio 20.0"
    contours = [c for c in ax.collections if hasattr(c, "levels")]
    assert len(contours) == 2
    assert len([c for c in fig.axes[1].collections if hasattr(c, "levels")]) == 1  # empty core: no outline
    # The tissue-at-risk outline hugs its square: the contour at 0.5 lies half a pixel outside
    # the outermost mask pixels (linear interpolation between 1 and 0 pixel centres).
    region = np.argwhere(figures.axial_display(tar, 1))
    (r0, c0), (r1, c1) = region.min(0), region.max(0)
    vertices = np.concatenate([p.vertices for p in contours[0].get_paths()])
    assert vertices[:, 0].min() == pytest.approx(c0 - 0.5) and vertices[:, 0].max() == pytest.approx(c1 + 0.5)
    assert vertices[:, 1].min() == pytest.approx(r0 - 0.5) and vertices[:, 1].max() == pytest.approx(r1 + 0.5)
    np.testing.assert_allclose(contours[0].get_edgecolor()[0][:3], figures.TISSUE_AT_RISK_RGB)


def test_save_figure_is_byte_stable(tmp_path):
    df = _per_case()
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for path in paths:
        figures.save_figure(figures.volume_agreement_grid(df, "scatter"), path)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[0].read_bytes() == paths[1].read_bytes()
    figures.save_figure(figures.volume_agreement_grid(df), tmp_path / "c.pdf")
    assert (tmp_path / "c.pdf").read_bytes()[:4] == b"%PDF"
