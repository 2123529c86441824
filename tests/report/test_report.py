"""`grokwatch report`: the report model, HTML, Markdown, GitHub annotations and exit codes."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import invoke, llama_block, make_anti_run, make_clean_run, make_trap_run
from typer.testing import CliRunner

from grokwatch.cli import app


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    return {
        "anti": make_anti_run(base / "anti"),
        "trap": make_trap_run(base / "trap"),
        "clean": make_clean_run(base / "clean"),
    }


@pytest.fixture(scope="module")
def anti_html(runs, tmp_path_factory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("html") / "report.html"
    assert invoke(runs["anti"]).exit_code == 0  # fills the cache: this HTML is built from cached records
    r = invoke(runs["anti"], "--html", out)
    assert r.exit_code == 0, r.output
    return out.read_text(encoding="utf-8"), out


# ---------------------------------------------------------------- the model


def test_model_levels_and_agreement(runs):
    from grokwatch.report import build_report
    from grokwatch.report.model import facts
    from grokwatch.scan import scan_folder
    from grokwatch.settings import PhaseRules, Settings

    rep = build_report(scan_folder(runs["anti"], Settings(traps=True), workers=1))
    assert [c.step for c in rep.checkpoints] == [0, 10, 100, 1000, 10000, 100000]
    assert rep.level == "anti-grokking"
    # the seeded run's actual labels (measured; a new labeller may move them, then update these figures)
    PRE, GROK, ANTI = "pre-grokking", "grokking", "anti-grokking"
    # trend rule: the stable rank of fc1 falls 35.3 -> 6.4 by step 1000 (onset), 5 traps at 100000
    assert [c.phase for c in rep.checkpoints] == [PRE, PRE, PRE, GROK, GROK, ANTI]
    assert [(pr.phase, pr.start, pr.end, pr.first_step, pr.last_step) for pr in rep.timeline] == [
        (PRE, 0, 2, 0, 100),
        (GROK, 3, 4, 1000, 10000),
        (ANTI, 5, 5, 100000, 100000),
    ]
    assert rep.onset.step == 1000 and rep.best.step == 10000 and rep.first_anti.step == 100000
    assert rep.peak.step == 10000 and rep.drop.step == 100000
    # the early warning follows the rule: under the trend rule, the first anti-grokking label (at the drop);
    # the planted element mean's first trap at 1000 is a fact, not the warning
    assert rep.warning is rep.first_anti and rep.lead(rep.warning) == 0
    assert rep.over_correlated.step == 1000 and "fc1.weight 1 trap" in rep.over_correlated.warning
    assert rep.n_over_correlated == 3
    lines = dict(facts(rep))
    assert lines["early warning"].startswith(
        "step 100,000 (step_00100000.safetensors): first anti-grokking label"
    )
    assert "at 3 of 6 checkpoints, first step 1,000" in lines["over-correlated"]
    assert "first anti-grokking" not in lines  # it is the early warning row
    # under the paper's rule the precursor (one trap, or alpha < 2) is the warning, as it always was
    paper = build_report(
        scan_folder(runs["anti"], Settings(traps=True), workers=1, rules=PhaseRules(rule="paper"))
    )
    assert paper.warning.step == 1000 and paper.lead(paper.warning) == 99000
    assert "over-correlated" not in dict(facts(paper)) and "first anti-grokking" in dict(facts(paper))
    assert [c.acc_phase for c in rep.checkpoints] == [PRE, PRE, GROK, GROK, GROK, ANTI]
    ag = rep.agreement
    assert (ag.compared, ag.agree) == (6, 5)  # step 100: accuracy already grokking, the spectra not yet
    assert ag.confusion == {(PRE, PRE): 2, (PRE, GROK): 1, (GROK, GROK): 2, (ANTI, ANTI): 1}
    assert abs(ag.balanced - (1 + 2 / 3 + 1) / 3) < 1e-12 and ag.false_alarms == 0
    for name, level in (("trap", "trap"), ("clean", "none")):
        assert build_report(scan_folder(runs[name], Settings(traps=True), workers=1)).level == level


# ---------------------------------------------------------------- HTML


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.tags, self.attrs, self.stack, self.figures = set(), [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        d = dict(attrs)
        if tag == "section":
            self.ids.add(d.get("id"))
        if tag == "figure":
            self.figures.append(0)
        if tag == "svg" and "figure" in self.stack:
            self.figures[-1] += 1
        self.stack.append(tag)

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop() != tag:
            pass


def test_html_sections_self_contained_and_plots_inline(anti_html, runs):
    from grokwatch.report.html import SECTIONS

    text, path = anti_html
    p = _Collect()
    p.feed(text)
    assert {k for k, _ in SECTIONS} <= p.ids
    assert "http://" not in text and "https://" not in text and "file:" not in text
    assert not {"script", "img", "link", "iframe", "object", "embed"} & set(p.tags)
    for tag, k, v in p.attrs:
        if k in ("src", "href", "xlink:href", "action", "srcset", "data"):
            assert v.startswith("#"), (tag, k, v)  # in-page links and SVG <use> only
    assert "@import" not in text and "url(" not in re.sub(r"url\(#[^)]*\)", "", text)
    # every plot is embedded: each figure holds an inline svg; 4 run plots (α, accuracy, measures, traps) and
    # 4 x 2 ESD figures (first checkpoint, pre -> grokking boundary = first warning, best test accuracy, grokking -> anti = last)
    assert p.figures and all(n == 1 for n in p.figures)
    assert len(p.figures) == 4 + 4 * 2
    assert str(runs["anti"]) not in text and str(path.parent) not in text  # no tmp paths
    for needle in (
        "early warning",
        "peak test accuracy",
        "agreement",
        "Phase timeline",
        "anti-grokking",
        "fc1.weight",
        "grokwatch",
    ):
        assert needle in text


def test_html_byte_identical(anti_html, runs, tmp_path):
    text, _ = anti_html
    fresh = tmp_path / "fresh.html"
    # anti_html was built from the cache; this one recomputes everything
    assert invoke(runs["anti"], "--html", fresh, "--no-cache").exit_code == 0
    assert fresh.read_bytes() == text.encode("utf-8")


def test_html_without_accuracy_or_traps(runs, tmp_path):
    out = tmp_path / "r.html"
    r = invoke(runs["clean"], "--html", out, "--no-traps", "--layers", "fc1.weight")
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "no train/test accuracy metadata" in text and "Traps were not computed" in text


# ---------------------------------------------------------------- Markdown, step summary, annotations


def _tables(md: str) -> list[list[str]]:
    tables, cur = [], []
    for line in md.splitlines():
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            tables.append(cur)
            cur = []
    return tables + ([cur] if cur else [])


def _cells(line: str) -> int:
    return len(re.split(r"(?<!\\)\|", line.strip())) - 2


def test_markdown_table_shape(runs, tmp_path):
    md_file = tmp_path / "summary.md"
    r = invoke(runs["anti"], "--markdown", md_file)
    assert r.exit_code == 0, r.output
    md = md_file.read_text()
    assert md.startswith("### grokwatch report: anti\n")
    facts, timeline = _tables(md)
    assert facts[0] == "| item | value |" and re.fullmatch(r"\|(---\|){2}", facts[1])
    assert timeline[0] == "| steps | phase | checkpoints | evidence |" and re.fullmatch(
        r"\|(---\|){4}", timeline[1]
    )
    for table, n in ((facts, 2), (timeline, 4)):
        assert len(table) > 2 and all(_cells(line) == n for line in table), table
    keys = [line.split("|")[1].strip() for line in facts[2:]]
    assert {"checkpoints", "early warning", "peak test accuracy", "agreement", "level"} <= set(keys)
    assert sum(int(line.split("|")[3]) for line in timeline[2:]) == 6


def test_step_summary_appended(runs, tmp_path):
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    md_file = tmp_path / "own.md"
    r = invoke(runs["anti"], "--markdown", md_file, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert r.exit_code == 0, r.output
    assert summary.read_text() == "earlier step\n" + md_file.read_text() + "\n"
    r = invoke(runs["clean"], env={"GITHUB_STEP_SUMMARY": str(summary)})  # no --markdown: still appended
    assert summary.read_text().count("### grokwatch report:") == 2


def test_github_annotations(runs):
    r = invoke(runs["anti"], env={"GITHUB_ACTIONS": "true"})
    assert r.exit_code == 0, r.output
    lines = [line for line in r.stdout.splitlines() if line.startswith("::")]
    assert lines and all(
        line.startswith("::warning title=grokwatch%3A anti-grokking in anti::") for line in lines
    )
    assert any("step 100,000 (step_00100000.safetensors)" in line for line in lines)
    assert "::warning" not in invoke(runs["anti"]).stdout
    assert "::warning" not in invoke(runs["clean"], env={"GITHUB_ACTIONS": "true"}).stdout


# ---------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    "run,fail_on,extra,code",
    [
        ("clean", "none", (), 0),
        ("clean", "trap", (), 0),
        ("clean", "anti-grokking", (), 0),
        ("trap", "trap", (), 1),
        ("trap", "anti-grokking", (), 0),
        ("trap", "trap", ("--exit-zero",), 0),
        ("anti", "none", (), 0),
        ("anti", "trap", (), 1),
        ("anti", "anti-grokking", (), 1),
        ("anti", "anti-grokking", ("--exit-zero",), 0),
    ],
)
def test_fail_on_exit_codes(runs, run, fail_on, extra, code):
    r = invoke(runs[run], "--fail-on", fail_on, *extra)
    assert r.exit_code == code, r.output
    if code == 1:
        assert f"--fail-on {fail_on}" in r.stderr


def test_fail_on_env_twin(runs):
    assert invoke(runs["anti"], env={"GROKWATCH_FAIL_ON": "anti-grokking"}).exit_code == 1


def test_exit_2_usage(runs):
    assert invoke(runs["clean"], "--fail-on", "sometimes").exit_code == 2
    assert invoke(runs["clean"], "--acc-drop", "2").exit_code == 2


def test_exit_3_bad_file_still_reports(runs, tmp_path):
    folder = make_clean_run(tmp_path / "mixed")
    (folder / "step_00000003.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    out = tmp_path / "r.html"
    r = invoke(folder, "--html", out, "--layers", "fc1.weight")
    assert r.exit_code == 3, r.output
    assert "step_00000003.safetensors" in r.stderr
    assert out.exists() and "Skipped files" in out.read_text()
    r = invoke(folder, "--fail-on", "anti-grokking", "--exit-zero")
    assert r.exit_code == 3, r.output


def test_exit_4_no_checkpoints(tmp_path):
    (tmp_path / "empty").mkdir()
    assert invoke(tmp_path / "empty").exit_code == 4
    assert invoke(tmp_path / "missing", "--exit-zero").exit_code == 4


def test_unwritable_output_is_usage_error(runs, tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "x.md"
    r = invoke(runs["clean"], "--markdown", target)
    assert r.exit_code == 2 and f"--markdown {target}: no such directory" in r.stderr


def test_markdown_to_stdout(tmp_path):

    fixtures = __import__("pathlib").Path(__file__).resolve().parents[2] / "fixtures" / "mini_run"
    r = CliRunner().invoke(
        app,
        ["report", str(fixtures), "-j", "1", "--no-cache", "--markdown", "-"],
        env={"NO_COLOR": "1", "GITHUB_STEP_SUMMARY": "", "GITHUB_ACTIONS": ""},
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("### grokwatch report") and "phase timeline" not in r.stdout


def test_transformer_layers_carry_the_caveat(runs, tmp_path):
    """A model with attention layers is told that the phase rules are unvalidated there (measured:
    29 false alarms on a generalizing transformer); an MLP run is not."""
    from grokwatch.checkpoints.layers import is_attention
    from grokwatch.phases.labels import TRANSFORMER_CAVEAT
    from grokwatch.report import build_report
    from grokwatch.report.model import facts
    from grokwatch.scan import scan_folder

    rep = build_report(scan_folder(llama_block(tmp_path / "llama"), workers=1, cache=False))
    assert sorted(rep.attention_layers) == [f"model.layers.0.self_attn.{p}_proj.weight" for p in "koqv"]
    assert dict(facts(rep))["caveat"] == f"4 {TRANSFORMER_CAVEAT}"
    r = invoke(tmp_path / "llama")
    assert "6 false alarms in 560 checkpoints" in " ".join(r.output.split())
    assert "caveat" not in dict(facts(build_report(scan_folder(runs["anti"], workers=1, cache=False))))
    # names from the layouts grokwatch reads: ours, torch MHA, GPT-2, BERT, GPT-NeoX, ViT, --split-qkv parts
    for name in (
        "blocks.0.attn.qkv.weight",
        "layers.0.self_attn.in_proj_weight",
        "h.0.attn.c_proj.weight",
        "encoder.layer.0.attention.self.key.weight",
        "gpt_neox.layers.0.attention.query_key_value.weight",
        "blocks.3.attn.proj.weight",
        "h.0.attn.c_attn.weight[v]",
    ):
        assert is_attention(name), name
    for name in (
        "fc1.weight",
        "h.0.mlp.c_fc.weight",
        "model.layers.0.mlp.up_proj.weight",
        "tok_embed.weight",
    ):
        assert not is_attention(name), name
