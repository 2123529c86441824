"""Which checkpoints get ESD plots in the report: where the phases change, not only first / best / last.

    picks = esd_picks(rep)                   # [(why, CheckpointView)], each checkpoint once
    picks = esd_picks(rep, steps=[1000, 5000])   # --esd-steps: exactly these (nearest checkpoint)

Default picks, in step order: the first checkpoint, the first checkpoint of
every phase range after the first (a phase boundary: "pre-grokking → grokking"),
the first early warning, the best test accuracy, the last checkpoint. When the
phase flips often only the first `MAX_BOUNDARIES` boundaries are drawn and the
rest are named in `skipped` (choose them with --esd-steps).
"""

from __future__ import annotations

__all__ = ["MAX_BOUNDARIES", "EsdPicks", "esd_picks", "parse_steps"]

MAX_BOUNDARIES = 8


class EsdPicks(list):
    """[(why, CheckpointView)] in step order, plus `skipped`: boundaries left out (labels)."""

    skipped: list[str]

    def __init__(self, items=(), skipped=None):
        super().__init__(items)
        self.skipped = list(skipped or [])


def parse_steps(text: str) -> list[int]:
    """'1000,5e3, 20000' -> [1000, 5000, 20000]; ValueError names the bad item."""
    out = []
    for item in text.split(","):
        item = item.strip().replace("_", "")
        if not item:
            continue
        try:
            v = float(item)
        except ValueError:
            raise ValueError(f"not a step: {item!r}") from None
        if v != int(v) or v < 0:
            raise ValueError(f"not a step: {item!r}")
        out.append(int(v))
    return out


def _add(picks: list, why: str, view) -> None:
    if view is None:
        return
    for i, (w, v) in enumerate(picks):
        if v is view:
            picks[i] = (f"{w}; {why}", v)
            return
    picks.append((why, view))


def esd_picks(rep, steps: list[int] | None = None) -> EsdPicks:
    """The (why, view) pairs whose ESDs the report draws; see the module docstring."""
    views = rep.checkpoints
    if not views:
        return EsdPicks()
    picks: list = []
    skipped: list[str] = []
    if steps:
        stepped = [v for v in views if v.step is not None]
        for s in steps:
            if not stepped:
                break
            v = min(stepped, key=lambda c: (abs(c.step - s), c.step))
            _add(picks, f"step {s:,} requested" + ("" if v.step == s else " (nearest checkpoint)"), v)
    else:
        _add(picks, "first checkpoint", views[0])
        for k, (a, b) in enumerate(zip(rep.timeline[:-1], rep.timeline[1:])):
            why = f"phase boundary {a.phase} → {b.phase}"
            if k < MAX_BOUNDARIES:
                _add(picks, why, views[b.start])
            else:
                skipped.append(f"{views[b.start].label} ({why})")
        _add(picks, "first early warning", rep.warning)
        _add(picks, "best test accuracy", rep.peak)
        _add(picks, "last checkpoint", views[-1])
    order = {id(v): i for i, v in enumerate(views)}
    picks.sort(key=lambda p: order.get(id(p[1]), 0))
    return EsdPicks([(w[0].upper() + w[1:], v) for w, v in picks], skipped)
