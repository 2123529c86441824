"""Accuracy phases: the ground truth a spectral label is scored against, from recorded accuracy.

One written definition, used by `report` and by `bench/phase_agreement.py`:
  - the post-fit baseline is the lowest test accuracy once train accuracy is
    >= `train_fit` (0.99); the peak is the highest test accuracy of the run;
  - pre-grokking: every checkpoint before the first one whose test accuracy
    reaches halfway from the baseline to the peak;
  - anti-grokking: from the first checkpoint after the peak whose test accuracy
    is `drop` (0.03) or more below the peak, while train accuracy stays >= `train_fit`;
  - grokking: everything else.
A run that never fits its training set (train accuracy never >= `train_fit`), or
whose test accuracy never rises `min_rise` (0.1) above its post-fit baseline,
never groks: every checkpoint is pre-grokking.

The peak is the run's global peak, so these phases use the whole run (they are
the answer key); spectral labels must not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from grokwatch.phases.labels import ANTI, GROK, PRE

__all__ = ["DROP", "TRAIN_FIT", "accuracy_phases", "first_drop_index", "peak_index"]

TRAIN_FIT = 0.99  # train accuracy at which the training set counts as fitted
DROP = 0.03  # test accuracy this far below its peak: the collapse has begun
HALF = 0.5  # grokking begins halfway from the post-fit baseline to the peak
MIN_RISE = 0.1  # a smaller rise above the baseline is not generalization


def _ok(v: float | None) -> bool:
    return v is not None and not math.isnan(v)


def peak_index(test: Sequence[float]) -> int:
    """Index of the highest test accuracy (the first one on ties)."""
    return max(range(len(test)), key=lambda i: (test[i], -i))


def first_drop_index(
    train: Sequence[float], test: Sequence[float], drop: float = DROP, train_fit: float = TRAIN_FIT
) -> int | None:
    """First checkpoint after the peak with test accuracy `drop` or more below it (train still fitted)."""
    if not test:
        return None
    p = peak_index(test)
    for i in range(p + 1, len(test)):
        if test[i] <= test[p] - drop and _ok(train[i]) and train[i] >= train_fit:
            return i
    return None


def accuracy_phases(
    steps: Sequence[int],
    train: Sequence[float | None],
    test: Sequence[float],
    train_fit: float = TRAIN_FIT,
    drop: float = DROP,
    min_rise: float = MIN_RISE,
) -> list[str]:
    """The accuracy phase of every checkpoint (see the module docstring); `steps` must be ascending."""
    n = len(test)
    if n == 0:
        return []
    fitted = [i for i in range(n) if _ok(train[i]) and train[i] >= train_fit]
    if not fitted:
        return [PRE] * n
    baseline = min(test[i] for i in fitted)
    p = peak_index(test)
    peak = test[p]
    if peak - baseline < min_rise:
        return [PRE] * n
    half = baseline + HALF * (peak - baseline)
    onset = next(i for i in range(n) if test[i] >= half)
    d = first_drop_index(train, test, drop, train_fit)
    out = []
    for i in range(n):
        if i < onset:
            out.append(PRE)
        elif d is not None and i >= d and _ok(train[i]) and train[i] >= train_fit:
            out.append(ANTI)
        else:
            out.append(GROK)
    return out
