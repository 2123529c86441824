"""The HTML report renders in a real browser: a headless-Chromium screenshot that is not blank.

Uses Debian's `chromium` (`.ci/run` installs it); skips only where it is absent.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from helpers import invoke, make_anti_run

CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_screenshot_not_blank(tmp_path):
    import matplotlib.image as mpimg

    run = make_anti_run(tmp_path / "run")
    html = tmp_path / "report.html"
    r = invoke(run, "--html", html, "--layers", "fc1.weight")
    assert r.exit_code == 0, r.output
    png = tmp_path / "shot.png"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={png}",
        "--window-size=1280,2000",
        html.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.exists(), proc.stderr[-2000:]
    img = mpimg.imread(str(png))  # float RGB(A) in [0, 1]
    assert img.shape[0] == 2000 and img.shape[1] == 1280
    rgb = np.round(img[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    colors = np.unique(rgb[::7], axis=0)
    assert len(colors) > 200, f"only {len(colors)} distinct colours: blank page?"
    nonwhite = np.mean(rgb.min(axis=1) < 235)
    assert 0.03 < nonwhite < 0.9, f"{nonwhite:.1%} of pixels are not white"
    # the coloured phase bands of the alpha plot (pre-grokking amber / grokking green / anti red) show up
    r_, g_, b_ = rgb[:, 0].astype(int), rgb[:, 1].astype(int), rgb[:, 2].astype(int)
    assert np.any((r_ - b_ > 25) & (g_ - b_ > 10)) or np.any((g_ - r_ > 15) & (g_ - b_ > 15))


MEASURE = """<script>
window.addEventListener('load', () => {
  const box = document.querySelector('#layers .scroll');
  const lh = parseFloat(getComputedStyle(document.querySelector('#checkpoints tbody td:last-child')).lineHeight);
  const ev = [...document.querySelectorAll('#checkpoints tbody td:last-child')].map(td => {
    const s = getComputedStyle(td);
    return (td.clientHeight - parseFloat(s.paddingTop) - parseFloat(s.paddingBottom)) / lh;
  });
  document.body.setAttribute('data-m', JSON.stringify({
    layersOverflow: box.scrollWidth - box.clientWidth,
    pageOverflow: document.documentElement.scrollWidth - window.innerWidth,
    evidenceLines: Math.max(...ev),
    headers: [...document.querySelectorAll('#layers th')].map(th => th.textContent),
  }));
});
</script>"""


def _measure(html_path, tmp_path, width: int) -> dict:
    """Layout numbers from Chromium itself: a copy of the report with a measuring script
    (the report has no JavaScript; only this test copy does), read back with --dump-dom."""
    import html as html_mod
    import json
    import re

    page = tmp_path / f"measure-{width}.html"
    page.write_text(html_path.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"))
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / f'profile-{width}'}",
        f"--window-size={width},1000",
        "--dump-dom",
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'data-m="([^"]*)"', proc.stdout)
    assert m, proc.stderr[-2000:]
    return json.loads(html_mod.unescape(m.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_tables_fit_1280_and_scroll_in_their_box_at_800(tmp_path):
    from helpers import write_run

    run = write_run(
        tmp_path / "run", steps=(1, 10, 100, 1000, 10000, 100000, 300000), meta={"test_acc": "0.5"}
    )
    html = tmp_path / "report.html"
    r = invoke(run, "--html", html)
    assert r.exit_code in (0, 3), r.output
    wide = _measure(html, tmp_path, 1280)
    assert wide["layersOverflow"] <= 0, wide  # every per-layer column visible at 1280 px
    assert wide["evidenceLines"] <= 2.05, wide  # evidence: not four lines per row
    assert wide["headers"][-1] == "phase" and "threshold" in wide["headers"]
    narrow = _measure(html, tmp_path, 800)
    assert narrow["pageOverflow"] <= 0, narrow  # wide tables scroll inside their own box
