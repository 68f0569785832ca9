"""alignpipe.figures: every figure drawn on a small hand-made alignment table and saved as PNG; its panels,
titles, labels and legend entries, and the PNG's pixel size (no pixel comparisons)."""
import struct

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr

from alignlib.ensembles.alignment import member_pairs
from alignpipe.figures import (
    CHANCE_LABEL,
    alignment_per_layer_vs_n,
    alignment_vs_n,
    alignment_vs_snr,
    alignment_vs_test_error,
    metric_label,
    noise_floor_vs_n,
    save_figure,
    theory_residuals,
)

METRICS, LAYERS, SNRS, NS, S = ["cka_linear", "procrustes", "rsa"], ["hidden", "output"], [1.0, 10.0], [5, 10, 20, 40], 4


def hand_table(chance=True, seed=0):
    """An alignment table as compute_alignment writes it, with values drawn at random: 3 metrics x 2 layers,
    2 SNRs x 4 n, 4 members; noise fit 0 up to n = 10, 1 beyond (threshold 10), steps 100 = max_steps."""
    rng = np.random.default_rng(seed)
    ia, ib = member_pairs(range(S))
    grid = (len(SNRS), len(NS), S)
    ds = xr.Dataset(
        {"alignment": (("metric", "layer", "snr", "n", "pair"), 0.5 + 0.1 * rng.random((3, 2, 2, 4, len(ia)))),
         "alignment_note": (("metric", "layer"), np.full((3, 2), "", dtype="U100")),
         "test_error": (("snr", "n", "seed"), rng.random(grid)),
         "noise_fit": (("snr", "n", "seed"), np.broadcast_to((np.array(NS) > 10)[None, :, None], grid).astype(float)),
         "steps": (("snr", "n", "seed"), np.full(grid, 100))},
        coords={"metric": METRICS, "layer": LAYERS, "snr": SNRS, "n": NS, "seed": np.arange(S),
                "pair": np.arange(len(ia)), "seed_a": ("pair", ia), "seed_b": ("pair", ib)},
        attrs={"task": "hand", "max_steps": 100, "network": "linear", "widths": [10, 20, 1]})
    if chance:
        mean = 0.1 + 0.01 * rng.random((3, 2, 2, 4))
        ds["chance"] = (("metric", "layer", "snr", "n"), mean)
        ds["chance_hi"] = (("metric", "layer", "snr", "n"), mean + 0.05)
    return ds


def legend_texts(fig):
    return [t.get_text() for legend in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
            for t in legend.get_texts()]


def bands(ax):
    return [c for c in ax.collections if isinstance(c, matplotlib.collections.PolyCollection)]


def panels(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def png_size(path):
    """(width, height) in pixels from the PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def saved(fig, path):
    """Save through save_figure; the PNG's pixels lie near the figure's size at 150 dpi (the tight box
    crops margins and takes in the legend below the panels)."""
    width, height = fig.get_size_inches() * 150
    assert save_figure(fig, path) == [path]
    w, h = png_size(path)
    assert 0.6 * width < w < 1.3 * width and 0.5 * height < h < 1.6 * height, (w, h, width, height)
    return w, h


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_alignment_vs_n_has_a_panel_per_metric_the_snr_curves_and_the_chance_band(tmp_path):
    fig = alignment_vs_n(hand_table(), threshold=10)
    assert fig._suptitle.get_text() == "hand: alignment against sample size"
    axes = panels(fig)
    assert [ax.get_ylabel() for ax in axes] == [metric_label(m, "hidden") for m in METRICS]
    assert metric_label("cka_linear", "hidden") == "linear CKA (hidden)"
    assert all(ax.get_xscale() == "log" and ax.get_xlabel() == "training samples n" and bands(ax) for ax in axes)
    assert sorted(legend_texts(fig)) == sorted(["SNR 1", "SNR 10", CHANCE_LABEL, "n = 10 (d)"])
    saved(fig, tmp_path / "n.png")


def test_the_chance_band_and_its_legend_entry_only_with_a_chance_level(tmp_path):
    fig = alignment_vs_n(hand_table(chance=False))
    assert CHANCE_LABEL not in legend_texts(fig) and not any(bands(ax) for ax in fig.axes)
    assert legend_texts(fig) == ["SNR 1", "SNR 10"]


def test_an_uninformative_metric_is_left_out_and_named_in_a_footnote():
    ds = hand_table()
    ds["alignment"].loc[{"metric": "rsa"}] = np.nan
    ds["alignment_note"].loc[{"metric": "rsa", "layer": "hidden"}] = "NaN at 8/8 grid points: ties"
    fig = alignment_vs_n(ds)
    assert [ax.get_ylabel() for ax in panels(fig)] == [metric_label(m, "hidden") for m in METRICS[:2]]
    notes = [t.get_text() for t in fig.texts if t.get_text().startswith("Not shown")]
    assert notes == ["Not shown (uninformative by construction): rsa (hidden): NaN at 8/8 grid points: ties"]


def test_per_layer_figure_has_a_row_per_metric_and_a_column_per_layer(tmp_path):
    ds = hand_table()
    ds["alignment"].loc[{"metric": "rsa", "layer": "output"}] = np.nan
    fig = alignment_per_layer_vs_n(ds)
    grid = np.array(fig.axes).reshape(3, 2)
    assert [ax.get_title() for ax in grid[0]] == ["layer hidden", "layer output"]
    assert [ax.get_ylabel() for ax in grid[:, 0]] == ["linear CKA", "Procrustes similarity", "RSA"]
    assert grid[2, 1].texts[0].get_text() == "not informative here" and not bands(grid[2, 1])
    assert all(bands(ax) for ax in grid.flat if ax is not grid[2, 1]) and CHANCE_LABEL in legend_texts(fig)
    assert fig._suptitle.get_text() == "hand: alignment per layer"
    assert alignment_per_layer_vs_n(ds, "procrustes")._suptitle.get_text() == "hand: Procrustes similarity per layer"
    saved(fig, tmp_path / "layers.png")


def test_alignment_vs_snr_has_a_colour_bar_per_panel(tmp_path):
    fig = alignment_vs_snr(hand_table())
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(panels(fig)) == len(bars) == 3
    assert all(ax.get_xlabel() == "signal-to-noise ratio" for ax in panels(fig))
    assert all(bar.get_ylabel() == "training samples n" for bar in bars)
    assert legend_texts(fig) == [CHANCE_LABEL] and fig._suptitle.get_text() == "hand: alignment against SNR"
    saved(fig, tmp_path / "snr.png")


def test_alignment_vs_test_error_marks_each_snr_and_the_highlighted_pair(tmp_path):
    fig = alignment_vs_test_error(hand_table(), highlight={"cka_linear": [((1.0, 5), (10.0, 40))]})
    first = panels(fig)[0]
    assert sorted(legend_texts(fig)) == sorted([CHANCE_LABEL, "SNR 1", "SNR 10"])
    assert [t.get_text() for t in first.texts] == ["equivalent error,\ndifferent alignment"]
    assert not panels(fig)[1].texts
    assert first.get_xlabel() == "clean test error (mean over members)"
    saved(fig, tmp_path / "error.png")


def test_theory_residuals_have_a_panel_per_metric_with_a_theory(tmp_path):
    ds = hand_table()
    theory = np.full((3, 2, 4), np.nan)
    theory[0] = 0.5  # cka_linear only
    ds["theory"] = (("metric", "snr", "n"), theory)
    ds["theory_given_data"] = (("metric", "snr", "n"), theory + 0.01)
    fig = theory_residuals(ds)
    assert [ax.get_ylabel() for ax in panels(fig)] == ["simulation − theory: linear CKA (hidden)"]
    assert sorted(legend_texts(fig)) == sorted(["SNR 1", "SNR 10", "minus closed form",
                                                "minus exact expectation\ngiven the data"])
    d_line = [line for line in panels(fig)[0].lines if list(line.get_xdata()) == [10, 10]]
    assert d_line  # n = d from the table's widths
    saved(fig, tmp_path / "residuals.png")


def test_noise_floor_figure_states_the_fraction_below_the_threshold(tmp_path):
    ds = hand_table()
    ds["interpolation_threshold"] = ("snr", [10.0, 10.0])  # members fit up to n = 10: n <= 10/1.5 all fit
    fig = noise_floor_vs_n(ds, tol=0.01)
    ax = fig.axes[0]
    assert ax.get_title() == "at n <= threshold/1.5: 100.0% of 8 members reached the noise floor (noise_fit <= 0.01)"
    assert sorted(legend_texts(fig)) == sorted(["SNR 1", "SNR 10", "reached the noise floor",
                                                "stopped at max_steps (100) short of it", "threshold / 1.5"])
    reached = [line.get_ydata() for line in ax.lines if line.get_label() == "SNR 1"][0]
    np.testing.assert_array_equal(reached, [1.0, 1.0, 0.0, 0.0])
    saved(fig, tmp_path / "fit.png")


def test_a_diverged_note_becomes_the_titles_second_line():
    ds = hand_table()
    ds.attrs["diverged_note"] = "2 of 32 members diverged during training and are excluded"
    for draw in (alignment_vs_n, alignment_vs_snr, alignment_per_layer_vs_n):
        assert draw(ds)._suptitle.get_text().endswith("\n2 of 32 members diverged during training and are excluded")


def test_save_figure_writes_pdf_only_when_asked(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert save_figure(fig, tmp_path / "a.png") == [tmp_path / "a.png"]
    assert not (tmp_path / "a.pdf").exists()
    fig, ax = plt.subplots()
    written = save_figure(fig, tmp_path / "b.png", pdf=True)
    assert written == [tmp_path / "b.png", tmp_path / "b.pdf"] and all(p.stat().st_size > 0 for p in written)
    assert np.all([not p.name.startswith(".") for p in tmp_path.iterdir()])  # no temporary files left
