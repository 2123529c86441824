"""Build a small corpus of transformer runs to measure the phase labeller on (bench/phase_runs.py's MLPs are not enough).

Every run is made by `grokwatch train` itself, in a git-ignored folder, resumable: rerun the
script and each run continues from its last saved state. Runs are queued in the order listed
(longest first) onto `--jobs` processes (one core each; `grokwatch train` uses one thread by
default).

    python bench/transformer_runs.py                       # all runs into runs/tf-corpus/, 2 at a time
    python bench/transformer_runs.py --only power-wd1-s0   # one run
    python bench/transformer_runs.py --list                # the runs and their commands
    python bench/phase_agreement.py runs/tf-corpus/*/      # then score them

Cost on a shared 2-core machine (measured with two runs at a time): Power et al.'s 2-layer
d=128 transformer ~70 ms/step alone (`--dry-run` estimates 72), so a 6,000-step run with 70
checkpoints takes ~10-14 minutes; the 1-layer Nanda-style run with batch 512 ~30 ms/step.
The whole corpus: roughly 30 minutes at two runs at a time.
"""

from __future__ import annotations

from pathlib import Path

from phase_runs import build_corpus  # bench/ is sys.path[0] when this script runs

# name -> grokwatch train options. Why these runs: Power et al.'s recipe with weight decay 1
# (two seeds) reaches test accuracy 1.0 at ~2,000 steps and keeps it, so every anti-grokking
# label there is a false alarm; without weight decay it memorizes (test accuracy stays low for
# the whole budget), so the rule must say pre-grokking, not anti; the 1-layer, no-LayerNorm
# Nanda-style model (batch 512 instead of full batch, ~7x cheaper on CPU) is a second
# architecture whose attention and MLP matrices are not normalised by a LayerNorm; the d=64,
# d_mlp 256 Power model (seed 2, ~2.5x cheaper per step) checks that what the rule reads on
# the d=128 runs is not tied to one size.
RUNS: dict[str, list[str]] = {
    "power-wd1-s0": ["--preset", "power2022", "--steps", "6000", "--checkpoints", "70", "--seed", "0"],
    "power-wd1-s1": ["--preset", "power2022", "--steps", "6000", "--checkpoints", "70", "--seed", "1"],
    "power-wd0-s0": [
        "--preset",
        "power2022",
        "--wd",
        "0",
        "--steps",
        "6000",
        "--checkpoints",
        "70",
        "--seed",
        "0",
    ],
    "power-w64-wd1-s2": [
        "--preset",
        "power2022",
        "--width",
        "64",
        "--d-mlp",
        "256",
        "--steps",
        "6000",
        "--checkpoints",
        "70",
        "--seed",
        "2",
    ],
    "nanda-b512-s0": [
        "--preset",
        "nanda2023",
        "--batch-size",
        "512",
        "--steps",
        "8000",
        "--checkpoints",
        "70",
        "--seed",
        "0",
    ],
    # Held out: added after the rule candidates were designed on the five runs above, and only
    # scored with them (another operation, another weight decay, another seed), never tuned on.
    "power-sub-wd1-s3": [
        "--preset",
        "power2022",
        "--op",
        "sub",
        "--steps",
        "6000",
        "--checkpoints",
        "70",
        "--seed",
        "3",
    ],
    "power-wd0.3-s4": [
        "--preset",
        "power2022",
        "--wd",
        "0.3",
        "--steps",
        "6000",
        "--checkpoints",
        "70",
        "--seed",
        "4",
    ],
    "nanda-div-b512-s1": [
        "--preset",
        "nanda2023",
        "--op",
        "div",
        "--batch-size",
        "512",
        "--steps",
        "8000",
        "--checkpoints",
        "70",
        "--seed",
        "1",
    ],
}
HELD_OUT = ("power-sub-wd1-s3", "power-wd0.3-s4", "nanda-div-b512-s1")


def main(argv: list[str] | None = None) -> int:
    return build_corpus(RUNS, Path("runs/tf-corpus"), __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
