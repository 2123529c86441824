"""Tables at 80, 100 and 160 columns: step, every alpha and the phase of every row stay intact.

Rich truncates cells (`10…`, `pre-gr…`) when a table is wider than the console; the tables
must instead drop the checkpoint column, wrap free text and fold wide tables.
"""

from __future__ import annotations

import io

import pytest
from helpers import make_anti_run
from rich.console import Console
from rich.measure import Measurement

from grokwatch.records import LayerRecord
from grokwatch.report.text import layer_table, rich_table, traps_table

WIDTHS = [80, 100, 160]
PHASES = ["pre-grokking", "grokking", "anti-grokking"]


def _records(layers: list[str], steps=(1, 5120, 31012, 300000)) -> list[LayerRecord]:
    out = []
    for i, step in enumerate(steps):
        for j, name in enumerate(layers):
            out.append(
                LayerRecord(
                    checkpoint=f"step_{step:08d}.safetensors",
                    step=step,
                    layer=name,
                    shape=[200, 784],
                    N=784,
                    M=200,
                    alpha=10.0 + i + j / 100 + 0.003,
                    sigma=0.5,
                    xmin=1.25,
                    D=0.05,
                    n_tail=9 if j == 2 else 40,
                    weak_fit=j == 2,
                    lambda_max=123.4,
                    stable_rank=12.3,
                    entropy=0.9,
                    n_traps=j % 2,
                    lambda_plus=2.265,
                    threshold=2.425,
                    rand_lambda_max=2.4,
                    ks_mp=0.012,
                    phase=PHASES[i % 3],
                    train_acc=1.0,
                    test_acc=0.348,
                )
            )
    return out


MLP = ["fc1.weight", "fc2.weight", "fc3.weight"]
WIDE = [f"model.layers.{k}.self_attn.q_proj.weight" for k in range(6)]


def render(renderable, width: int) -> list[str]:
    buf = io.StringIO()
    Console(width=width, file=buf, color_system=None, legacy_windows=False).print(renderable)
    return buf.getvalue().splitlines()


def tokens_of_row(lines: list[str], step: int) -> list[str]:
    """Every token on the lines that start with this step (one line per fold)."""
    toks = []
    for line in lines:
        parts = line.split()
        if parts and parts[0] == str(step):
            toks += parts
    return toks


def assert_intact(lines: list[str], width: int, expected: dict[int, list[list[str]]]) -> None:
    assert all(len(line) <= width for line in lines), max(map(len, lines))
    text = "\n".join(lines)
    assert "…" not in text
    for step, rows in expected.items():
        toks = tokens_of_row(lines, step)
        for cells in rows:
            for cell in cells:
                assert cell in toks, (step, cell, width, text)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("layers", [MLP, WIDE], ids=["mlp", "wide"])
def test_scan_table_keeps_step_alpha_phase(width, layers):
    recs = _records(layers)
    lines = render(rich_table(recs, title="grokwatch scan runs/quick (fit=ww)", width=width), width)
    expected: dict[int, list[list[str]]] = {}
    for r in recs:  # every alpha of the checkpoint (weak fits marked `?`) and its phase
        expected.setdefault(r.step, []).append([f"{r.alpha:.2f}" + ("?" if r.weak_fit else ""), r.phase])
    assert_intact(lines, width, expected)


@pytest.mark.parametrize("width", WIDTHS)
def test_scan_table_drops_checkpoint_before_anything_else(width):
    lines = "\n".join(render(rich_table(_records(MLP), width=width), width))
    # the three-layer table fits 160 columns with the checkpoint column, 80 only without it
    assert ("step_00300000.safetensors" in lines) == (width >= 160)
    assert "(1/2)" not in lines


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("layers", [MLP, WIDE], ids=["mlp", "wide"])
def test_per_layer_table_folds(width, layers):
    recs = _records(layers)
    lines = render(layer_table(recs, title="per layer", width=width), width)
    assert_intact(lines, width, {r.step: [[f"{r.alpha:.3f}", r.phase, "784×200"]] for r in recs})
    if width == 80:
        assert "(1/" in "\n".join(lines)  # folded, not truncated


@pytest.mark.parametrize("width", WIDTHS)
def test_traps_table_keeps_step_alpha_phase_and_marks_weak_fits(width):
    recs = _records(MLP)
    lines = render(traps_table(recs, "grokwatch traps runs/quick (seed=0)", width=width), width)
    expected = {r.step: [[f"{r.alpha:.2f}" + ("?" if r.weak_fit else ""), r.phase, "784×200"]] for r in recs}
    assert_intact(lines, width, expected)
    assert "? = weak fit" in " ".join(" ".join(lines).split())


def test_piped_width_is_natural():
    """width=None: one line per row, nothing folded or dropped (scripts grep the output)."""
    recs = _records(WIDE)
    lines = render(rich_table(recs, width=None), 10_000)
    assert sum(1 for line in lines if line.split()[:1] == ["300000"]) == 1
    assert "step_00300000.safetensors" in "\n".join(lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_report_summary_fits(width, tmp_path):
    from grokwatch.report import build_report
    from grokwatch.report.summary import render_terminal
    from grokwatch.scan import scan_folder
    from grokwatch.settings import Settings

    rep = build_report(scan_folder(make_anti_run(tmp_path / "anti"), Settings(traps=True), workers=1))
    buf = io.StringIO()
    con = Console(width=width, file=buf, color_system=None, legacy_windows=False)
    render_terminal(rep, con)
    lines = buf.getvalue().splitlines()
    assert all(len(line) <= width for line in lines)
    assert "…" not in buf.getvalue()
    for pr in rep.timeline:
        first = pr.steps.split()[0]
        row = [line for line in lines if line.split()[:1] == [first]]
        assert row and pr.phase in row[0].split(), (pr.steps, pr.phase, buf.getvalue())


def test_stdout_console_strips_trailing_spaces_when_piped():
    from grokwatch.environment import Environment

    buf = io.StringIO()
    con = Environment(stdout=buf, environ={}).stdout_console()
    con.print(rich_table(_records(MLP), title="a title wider than nothing", width=con.width))
    out = buf.getvalue()
    assert out and all(line == line.rstrip() for line in out.splitlines())
    assert Measurement.get(con, con.options, rich_table(_records(MLP), width=None)).maximum < con.width
