"""The server-side downsampling of the web UI: exact grids lose nothing, binned grids keep each
pixel column's min and max (spikes survive), non-finite values are counted, not drawn."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("starlette")

from aim_parquet.ui.api.downsample import build_grid, clean, minmax_points  # noqa: E402


def test_exact_grid_keeps_every_point_at_its_own_x() -> None:
    a, bad_a = clean(np.arange(0, 100, dtype=np.int64), np.linspace(1, 0, 100))
    b, bad_b = clean(np.arange(0, 100, 2, dtype=np.int64), np.arange(50, dtype=float))
    grid = build_grid([a, b], [bad_a, bad_b], columns=100)
    assert grid.mode == "exact"
    assert grid.x.tolist() == list(range(100))
    assert np.allclose(grid.ys[0], np.linspace(1, 0, 100).astype(np.float32))
    assert np.isnan(grid.ys[1][1::2]).all()  # b has no odd steps
    assert grid.ys[1][::2].tolist() == list(range(50))


def test_binned_grid_keeps_a_one_step_spike_and_the_range() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(0.0, 0.01, 1_000_000)
    y[777_777] = 50.0
    y[123_456] = -40.0
    s, _ = clean(np.arange(y.size), y)
    grid = build_grid([s], [0], columns=300)
    assert grid.mode == "binned"
    assert grid.x.size == 600 and grid.ys[0].size == 600
    finite = grid.ys[0][np.isfinite(grid.ys[0])]
    assert finite.max() == pytest.approx(50.0) and finite.min() == pytest.approx(-40.0)
    spike_slot = int(np.nanargmax(grid.ys[0]))
    assert abs(grid.x[spike_slot] - 777_777) <= y.size / 300  # within its pixel column


def test_binned_order_follows_the_curve() -> None:
    y = np.linspace(10.0, 0.0, 10_000)  # falling: each column's max comes before its min
    s, _ = clean(np.arange(y.size), y)
    row = build_grid([s], [0], columns=100).ys[0]
    assert (row[0::2] > row[1::2]).all()
    s2, _ = clean(np.arange(y.size), y[::-1].copy())
    row2 = build_grid([s2], [0], columns=100).ys[0]
    assert (row2[0::2] < row2[1::2]).all()


def test_non_finite_values_are_counted_and_left_out() -> None:
    y = np.array([1.0, np.nan, 2.0, np.inf, -np.inf, 3.0])
    s, bad = clean(np.arange(6), y)
    assert bad == 3
    assert s.x.tolist() == [0, 2, 5] and s.y.tolist() == [1.0, 2.0, 3.0]
    grid = build_grid([s], [bad], columns=10)
    assert grid.nonfinite == [3]
    assert np.nanmax(grid.ys[0]) == 3.0


def test_unsorted_x_epoch_axis_is_sorted_and_missing_x_dropped() -> None:
    s, _ = clean(np.array([2.0, np.nan, 0.0, 1.0]), np.array([20.0, 99.0, 0.0, 10.0]))
    assert s.x.tolist() == [0.0, 1.0, 2.0] and s.y.tolist() == [0.0, 10.0, 20.0]


def test_empty_series_and_empty_chart() -> None:
    empty, _ = clean(np.zeros(0), np.zeros(0))
    grid = build_grid([empty], [0], columns=50)
    assert grid.mode == "empty" and grid.ys[0].size == 0


def test_minmax_points_are_real_points_with_the_extremes() -> None:
    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 1000.0)
    y[5_000] = 9.0
    sx, sy = minmax_points(x, y, columns=200)
    assert sx.size <= 400
    assert 9.0 in sy.tolist() and sy.min() == pytest.approx(y.min())
    assert np.all(np.diff(sx) > 0)
    assert np.array_equal(sy, y[sx.astype(int)])  # every point is a real point
