"""Several runs side by side, ESD picks at phase boundaries, the text chart, --json and --figures."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import invoke, make_anti_run, write_run
from typer.testing import CliRunner

from grokwatch.cli import app


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("two")
    return {
        "anti": make_anti_run(base / "anti"),
        "plain": write_run(base / "plain", steps=(10, 100, 1000, 5000)),
    }


class _Page(HTMLParser):
    """Sections, ids, and every table as rows of cell texts."""

    def __init__(self):
        super().__init__()
        self.ids: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        d = dict(attrs)
        if "id" in d:
            self.ids.append(d["id"])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_two_run_html_holds_both_series_and_summary_rows(two, tmp_path):
    from grokwatch.report import build_report
    from grokwatch.scan import scan_folder
    from grokwatch.settings import Settings

    out = tmp_path / "runs.html"
    r = invoke(f"wd0={two['anti']}", two["plain"], "--html", out)
    assert r.exit_code == 0, r.output
    text = out.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    assert "script" not in page.tags and "http://" not in text and str(two["anti"]) not in text
    assert {"summary", "alpha", "accuracy", "phases", "runs", "run-0", "run-1"} <= set(page.ids)
    # the comparison table: one row per run, named wd0 (NAME=PATH) and plain (the folder)
    runs_table = next(t for t in page.tables if t and t[0][:3] == ["run", "checkpoints", "steps"])
    head, *rows = runs_table
    assert [row[0] for row in rows] == ["wd0", "plain"]
    col = {h: i for i, h in enumerate(head)}
    reps = {
        n: build_report(scan_folder(p, Settings(traps=True), workers=1, cache=False))
        for n, p in (("wd0", two["anti"]), ("plain", two["plain"]))
    }
    for row in rows:
        rep = reps[row[0]]
        assert row[col["checkpoints"]] == str(len(rep.checkpoints))
        assert row[col["grokking onset"]] == (f"{rep.onset.step:,}" if rep.onset else "–")
        assert row[col["level"]] == rep.level
    assert rows[0][col["peak test acc"]] == "0.920 @ 10,000" and rows[0][col["first drop"]].startswith(
        "100,000"
    )
    assert rows[0][col["balanced"]] == f"{100 * reps['wd0'].agreement.balanced:.0f}%"
    assert rows[1][col["peak test acc"]] == "–"  # no accuracy metadata
    # both runs' alpha series are in the one-axis figure: one SVG group per (run, layer) and the mean
    for k, rep in enumerate(reps.values()):
        for layer in [*rep.layers, "mean"]:
            assert re.search(rf'id="runs-alpha-series-{k}-{re.escape(layer)}"', text), (k, layer)
    assert 'id="runs-acc-acc-0"' in text and 'id="runs-acc-acc-1"' not in text
    # and each run's checkpoint table holds its alpha values
    for k, rep in enumerate(reps.values()):
        start, end = (
            text.index(f'<section id="run-{k}">'),
            text.index("</section>", text.index(f'id="run-{k}"')),
        )
        sec = _Page()
        sec.feed(text[start:end])
        table = next(t for t in sec.tables if t and t[0][:2] == ["step", "checkpoint"])
        assert len(table) - 1 == len(rep.checkpoints)
        first = table[1][2 : 2 + len(rep.layers)]
        by = {r.layer: r for r in rep.checkpoints[0].records}
        assert [c.rstrip("?") for c in first] == [f"{by[n].alpha:.2f}" for n in rep.layers]
    # the run with accuracy has the measures section (its ρ table), the run without has none
    sections = [text[text.index(f'<section id="run-{k}">') :].split("</section>")[0] for k in range(2)]
    assert "α and competing measures" in sections[0] and "α and competing measures" not in sections[1]
    # ids unique across the whole page (several runs' inline SVGs)
    dup = {i for i in page.ids if page.ids.count(i) > 1}
    assert not dup, sorted(dup)[:5]


def test_two_run_html_byte_stable_and_names(two, tmp_path):
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    assert invoke(two["anti"], two["plain"], "--html", a, "--no-traps").exit_code == 0
    assert invoke(two["anti"], two["plain"], "--html", b, "--no-traps", "--no-cache").exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    r = invoke(f"x={two['anti']}", f"x={two['plain']}")
    assert r.exit_code == 2 and "run name used twice: x" in r.output


def test_missing_folder_among_several_exits_4_after_the_rest(two, tmp_path):
    r = invoke(two["plain"], tmp_path / "nope", "--no-traps", "--json", "-")
    assert r.exit_code == 4
    data = json.loads(r.stdout)
    assert [run["name"] for run in data["runs"]] == ["plain"]


def test_parse_runs_names(tmp_path):
    from grokwatch.report.multi_run import parse_runs

    (tmp_path / "a" / "s0").mkdir(parents=True)
    (tmp_path / "b" / "s0").mkdir(parents=True)
    got = parse_runs([str(tmp_path / "a" / "s0"), str(tmp_path / "b" / "s0"), f"wd={tmp_path / 'a'}"])
    assert [n for n, _ in got] == ["a/s0", "b/s0", "wd"]
    with pytest.raises(ValueError):
        parse_runs(["x=a", "x=b"])


def test_scan_several_folders_json_and_csv(two):
    env = {"CI": "true"}
    r = CliRunner().invoke(
        app, ["scan", str(two["anti"]), f"P={two['plain']}", "-f", "json", "-j", "1"], env=env
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {x["run"] for x in rows} == {"anti", "P"} and len(rows) == 6 * 2 + 4 * 3
    r = CliRunner().invoke(
        app, ["scan", str(two["anti"]), str(two["plain"]), "-f", "csv", "-j", "1"], env=env
    )
    lines = r.stdout.splitlines()
    assert lines[0].startswith("run,checkpoint,step,") and len(lines) == 1 + 6 * 2 + 4 * 3
    assert {ln.split(",")[0] for ln in lines[1:]} == {"anti", "plain"}


# ---------------------------------------------------------------- ESD at the phase boundaries


def _view(step, phase):
    return SimpleNamespace(
        step=step, phase=phase, rel=f"s{step}", label=f"step {step:,}", records=[], reason=""
    )


def _timeline_rep(phases, warning_at=None, peak_at=None):
    from grokwatch.report.model import _timeline

    views = [_view(10 * (i + 1), p) for i, p in enumerate(phases)]
    return SimpleNamespace(
        checkpoints=views,
        timeline=_timeline(views),
        warning=None if warning_at is None else views[warning_at],
        peak=None if peak_at is None else views[peak_at],
    )


def test_esd_picks_every_boundary_of_a_constructed_timeline():
    from grokwatch.report.esd_picks import esd_picks

    P, G, A = "pre-grokking", "grokking", "anti-grokking"
    rep = _timeline_rep([P, P, G, G, G, A, A, G, P], warning_at=4, peak_at=3)
    picks = esd_picks(rep)
    steps = [v.step for _, v in picks]
    # first, boundaries at 30 (P→G), 60 (G→A), 80 (A→G), 90 (G→P, also the last), warning 50, peak 40
    assert steps == [10, 30, 40, 50, 60, 80, 90]
    why = {v.step: w for w, v in picks}
    assert "boundary pre-grokking → grokking" in why[30] and "boundary grokking → anti-grokking" in why[60]
    assert "early warning" in why[50] and "Best test accuracy" == why[40]
    assert "boundary grokking → pre-grokking" in why[90] and "last checkpoint" in why[90]
    assert picks.skipped == []


def test_esd_picks_caps_boundaries_and_honours_steps():
    from grokwatch.report.esd_picks import MAX_BOUNDARIES, esd_picks, parse_steps

    P, G = "pre-grokking", "grokking"
    rep = _timeline_rep([P, G] * 10)
    picks = esd_picks(rep)
    assert len(picks.skipped) == 19 - MAX_BOUNDARIES
    assert parse_steps("30, 1e2,45") == [30, 100, 45]
    chosen = esd_picks(rep, [30, 100, 44])
    assert [v.step for _, v in chosen] == [30, 40, 100]
    assert "nearest" in dict((v.step, w) for w, v in chosen)[40]
    with pytest.raises(ValueError):
        parse_steps("10,abc")


def test_html_esd_at_boundaries_and_esd_steps(two, tmp_path):
    out = tmp_path / "r.html"
    assert invoke(two["anti"], "--html", out, "--layers", "fc1.weight").exit_code == 0
    text = out.read_text()
    # anti run: pre 0-100, grok 1000-10000, anti 100000 (the early warning under the trend rule); peak 10000
    heads = re.findall(r"<h3>([^<]*): step ([\d,]+) ", text)
    assert [s for _, s in heads] == ["0", "1,000", "10,000", "100,000"]
    assert "Phase boundary grokking → anti-grokking; first early warning" in text
    assert "Phase boundary pre-grokking → grokking; first early warning" not in text
    out2 = tmp_path / "s.html"
    r = invoke(two["anti"], "--html", out2, "--layers", "fc1.weight", "--esd-steps", "100,99999")
    assert r.exit_code == 0, r.output
    heads = re.findall(r"<h3>([^<]*): step ([\d,]+) ", out2.read_text())
    assert heads == [("Step 100 requested", "100"), ("Step 99,999 requested (nearest checkpoint)", "100,000")]
    assert invoke(two["anti"], "--esd-steps", "x").exit_code == 2


# ---------------------------------------------------------------- the text chart, --json, --figures


def test_text_chart_fits_80_columns(two):
    from rich.cells import cell_len

    from grokwatch.report import build_report
    from grokwatch.report.text_chart import MARKERS, chart_lines
    from grokwatch.scan import scan_folder
    from grokwatch.settings import Settings

    rep = build_report(scan_folder(two["anti"], Settings(traps=True), workers=1))
    lines = chart_lines(rep, width=80)
    assert lines and max(cell_len(ln) for ln in lines) <= 80
    assert any(MARKERS[0] in ln for ln in lines) and any(MARKERS[1] in ln for ln in lines)
    phase = next(ln for ln in lines if ln.startswith("phase "))
    assert phase.split()[1].startswith("p") and phase.rstrip().endswith("A")  # pre first, anti last
    assert "fc1.weight" in lines[-2] + lines[-1] or any("fc1.weight" in ln for ln in lines)
    assert max(cell_len(ln) for ln in chart_lines(rep, width=40)) <= 40
    r = invoke(two["anti"], "--no-traps")
    assert "α per layer against step (log)" in r.output
    assert "α per layer against step" not in invoke(two["anti"], "--no-traps", "--no-chart").output


def test_json_export(two, tmp_path):
    out = tmp_path / "r.json"
    r = invoke(two["anti"], "--json", out, "--bootstrap", "5")
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["schema"] == 2 and len(data["runs"]) == 1
    run = data["runs"][0]
    assert run["name"] == "anti" and run["level"] == "anti-grokking"
    assert [t["phase"] for t in run["timeline"]] == ["pre-grokking", "grokking", "anti-grokking"]
    assert run["onset"]["step"] == 1000 and run["first_anti"]["step"] == 100000
    assert run["warning"]["step"] == 100000 and run["lead_steps"] == 0  # trend rule: the first anti label
    assert run["over_correlated"]["step"] == 1000 and run["n_over_correlated"] == 3
    assert [c["over_correlated"] is not None for c in run["checkpoints"]] == [False] * 3 + [True] * 3
    ck = run["checkpoints"][0]
    layer = ck["layers"]["fc1.weight"]
    assert set(layer) >= {"alpha", "sigma", "D", "xmin", "n_tail", "jump", "bootstrap"}
    assert layer["bootstrap"]["n"] == 5 and layer["bootstrap"]["std"] is not None
    fitted = [v["alpha"] for v in ck["layers"].values() if v["alpha"] is not None]
    assert abs(ck["mean_alpha"] - sum(fitted) / len(fitted)) < 1e-12
    assert data["comparison"]["rows"][0][0] == "anti"
    assert run["fit_jumps"] == sum(1 for c in run["checkpoints"] for v in c["layers"].values() if v["jump"])


def test_figures_svg_and_png(two, tmp_path):
    d = tmp_path / "figs"
    r = invoke(two["anti"], two["plain"], "--figures", d, "--no-traps", "--esd-steps", "100")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in d.iterdir())
    assert {
        "runs-alpha.svg",
        "runs-accuracy.svg",
        "runs-phases.svg",
        "anti-alpha.svg",
        "plain-alpha.svg",
    } <= set(names)
    assert "anti-esd-100-fc1.weight.svg" in names
    svg = (d / "runs-alpha.svg").read_text()
    assert svg.startswith("<?xml") and 'xmlns="http://www.w3.org/2000/svg"' in svg
    p = tmp_path / "png"
    assert invoke(two["plain"], "--figures", p, "--figure-format", "png", "--no-traps").exit_code == 0
    assert (p / "plain-alpha.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
