"""Every ESD panel shows its y-axis label inside the figure, whatever the spectrum's range.

The HTML report embeds these figures for every layer; with fixed margins, wide tick labels
(`4x10^-2` minor labels on a log axis spanning less than a decade) pushed `density (log)`
off the left edge for some layers.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from grokwatch.report.layer_figure import _RC, _figure
from grokwatch.spectral.esd import esd
from grokwatch.spectral.powerlaw import ww_fit
from grokwatch.spectral.traps import find_traps


@pytest.mark.parametrize("shape", [(200, 784), (200, 200), (10, 200), (64, 64)])
@pytest.mark.parametrize("tail", [None, 3.0])
def test_y_labels_inside_the_figure(shape, tail):
    rng = np.random.default_rng(sum(shape))
    W = rng.standard_t(tail, size=shape) if tail else 8 * rng.normal(size=shape)
    ev = esd(W)
    fit = ww_fit(ev)
    with matplotlib.rc_context(_RC):
        fig = _figure(ev, find_traps(W, seed=0), fit.alpha, fit.xmin, "layer @ step 1")
        renderer = fig.canvas.get_renderer()
        fig.draw(renderer)
        width = fig.bbox.width
        for ax, label in zip(fig.axes, ("density (log)", "density")):
            assert ax.get_ylabel() == label
            box = ax.yaxis.label.get_window_extent(renderer)
            assert box.x0 >= 0 and box.x1 <= width, (label, box)
            ticks = [
                t
                for t in ax.get_yticklabels()
                if t.get_text() and ax.get_ylim()[0] <= t.get_position()[1] <= ax.get_ylim()[1]
            ]
            assert ticks, f"{label}: no y tick labels"
            for t in ticks:  # the axis label does not overlap the tick labels
                assert t.get_window_extent(renderer).x0 > box.x1 - 1, (label, t.get_text())
