"""Per-checkpoint work unit: read each selected weight, eigensolve, fit, measure.

This is what a pool worker runs. It receives a `Checkpoint` (paths, not
arrays) and `Settings`, reads tensors itself and returns plain records, so the
parent never holds weights and results do not depend on the number of workers.
"""

from __future__ import annotations

import fnmatch
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from grokwatch.checkpoints import Checkpoint, TensorReader, TensorRef, tensor_refs
from grokwatch.checkpoints.base_model import attach_base, load_base
from grokwatch.checkpoints.layers import (
    AttentionHeads,
    config_attention,
    is_embedding,
    needs_heads,
    split_qkv_refs,
)
from grokwatch.errors import GrokwatchError
from grokwatch.measures import weight_measures
from grokwatch.records import LayerRecord
from grokwatch.settings import Settings
from grokwatch.spectral.esd import (
    SCRATCH_MAX,
    NonFiniteError,
    analysable,
    esd,
    gram_eigenvalues_owned,
    oriented_shape,
    spectrum_metrics,
)
from grokwatch.spectral.powerlaw import fit_tail

__all__ = [
    "TRAIN_METRICS",
    "CheckpointResult",
    "Settings",
    "analyze_checkpoint",
    "analyze_checkpoints",
    "analyze_matrix",
    "analysed_refs",
    "checkpoint_refs",
    "fit_values",
    "layer_matrix_values",
    "layer_seed",
    "layer_spectra",
    "matrix_spectrum",
    "new_record",
    "read_weights",
    "select",
    "set_fields",
    "shape_fields",
    "spectrum_fields",
    "trap_fields",
    "why_nothing",
]


def layer_seed(seed: int, layer: str) -> int:
    """A stable per-layer seed: same shuffle whatever the order or worker."""
    return (seed * 1_000_003 + zlib.crc32(layer.encode())) % (2**32)


def checkpoint_refs(ck: Checkpoint, settings: Settings) -> list[TensorRef]:
    """Every tensor of a checkpoint as it is analysed: with `--base`, LoRA layers carry their base W.

    Layers left as ΔW are noted on `ck`. See `analysed_refs` for the ones a scan analyses.
    """
    refs = tensor_refs(ck)
    if settings.base is not None and any(r.key_b for r in refs):
        refs, unmatched = attach_base(refs, load_base(settings.base))
        ck.notes.extend(unmatched)
    return refs


def analysed_refs(ck: Checkpoint, settings: Settings) -> tuple[list[TensorRef], list[TensorRef]]:
    """(every tensor, the ones a scan analyses) of one checkpoint; why something was left is on `ck.notes`.

    The one place every path (local pool, per-layer split, GPU, Dask workers) gets its layers from,
    so `--base`, `--split-qkv`, `--no-embeddings` and the size filter act the same whichever runs.
    """
    all_refs = checkpoint_refs(ck, settings)
    heads = _heads(ck, all_refs) if settings.split_qkv else None
    return all_refs, select(all_refs, settings, heads, ck.notes)


def select(
    refs: list[TensorRef],
    settings: Settings,
    heads: int | AttentionHeads | None = None,
    notes: list[str] | None = None,
) -> list[TensorRef]:
    """The refs a scan analyses: large enough, matching --layers/--exclude, embeddings and fused
    QKV handled as `settings` says (see checkpoints/layers.py; `heads` splits GPT-NeoX's
    per-head layout and grouped-query attention, `notes` receives why a fused matrix was kept whole)."""
    if not settings.embeddings:
        refs = [r for r in refs if not is_embedding(r.layer)]
    if settings.split_qkv:
        refs = split_qkv_refs(refs, heads, notes)
    out = []
    for r in refs:
        if not analysable(r.shape, settings.min_side):
            continue
        if r.key_b and r.base_key is None and r.rank < settings.min_side:
            continue  # a rank-r LoRA update has r non-zero eigenvalues: too few to fit, like a thin matrix
        if settings.layers and not any(fnmatch.fnmatchcase(r.layer, p) for p in settings.layers):
            continue
        if any(fnmatch.fnmatchcase(r.layer, p) for p in settings.exclude):
            continue
        out.append(r)
    return out


def analyze_matrix(
    W: np.ndarray,
    settings: Settings | None = None,
    layer: str = "",
    *,
    checkpoint: str = "",
    step: int | None = None,
) -> LayerRecord:
    """Every per-layer number for one weight tensor, as the `LayerRecord` a scan would give it.

    `W` is a numpy array or a torch tensor of any float dtype (2-D, or a conv
    kernel); `layer` names the record and seeds the trap shuffle exactly as a
    scan does, so the numbers match `scan_folder` for the same tensor. Bad
    weights (NaN/Inf, a failed fit) are reported in `.error`, not raised; the
    phase stays None (it is a checkpoint's label, not a layer's).

        import torch, grokwatch
        rec = grokwatch.analyze_matrix(torch.nn.Linear(784, 200).weight, layer="fc1.weight")
        rec.alpha, rec.n_tail, rec.weak_fit
    """
    settings = settings or Settings()
    W = W.detach().cpu().double().numpy() if hasattr(W, "detach") else np.asarray(W)
    rec = LayerRecord(checkpoint=checkpoint, step=step, layer=layer, shape=list(W.shape))
    vals, evals = matrix_spectrum(W, settings, layer)
    set_fields(rec, vals)
    if evals is not None:
        set_fields(rec, spectrum_fields(evals, settings))
    return rec


def matrix_spectrum(W: np.ndarray, settings: Settings, layer: str = "") -> tuple[dict, np.ndarray | None]:
    """The part of a layer's analysis that needs the weights: eigenvalues, shape, traps.

    Returns the fields so far and the eigenvalues (None after an error) for `spectrum_fields`.
    """
    W = np.asarray(W)
    try:
        evals = esd(W)
    except NonFiniteError as e:
        return {"error": str(e)}, None
    return {**shape_fields(W.shape, evals, settings), **trap_fields(W, settings, layer)}, evals


def shape_fields(shape: tuple[int, ...], evals: np.ndarray, settings: Settings) -> dict:
    """N, M, the count of non-zero eigenvalues and the fit's name: what a layer's shape and ESD give."""
    N, M = oriented_shape(shape)
    return {"N": N, "M": M, "num_evals": int((evals > 1e-5).sum()), "fit": settings.fit}


def trap_fields(W: np.ndarray, settings: Settings, layer: str) -> dict:
    """The correlation-trap fields when `settings.traps` (the shuffle seeded per layer), else none."""
    if not settings.traps:
        return {}
    from grokwatch.spectral.traps import find_traps

    t = find_traps(W, seed=layer_seed(settings.seed, layer), replicas=settings.replicas)
    return {
        "n_traps": t.n_traps,
        "lambda_plus": t.lambda_plus,
        "threshold": t.threshold,
        "rand_lambda_max": t.rand_lambda_max,
        "ks_mp": t.ks_mp,
    }


def spectrum_fields(evals: np.ndarray, settings: Settings) -> dict:
    """The part that needs only the eigenvalues: norms and the power-law fit."""
    out = spectrum_metrics(evals)
    f = fit_tail(evals, settings.fit)
    if f.ok:
        out.update(alpha=f.alpha, xmin=f.xmin, D=f.D, n_tail=f.n_tail, sigma=f.sigma, weak_fit=f.weak)
        if out["log_spectral_norm"] is not None:
            out["alpha_weighted"] = f.alpha * out["log_spectral_norm"]
    else:
        out.update(weak_fit=True, error="power-law fit failed (too few non-zero eigenvalues)")
    return out


def layer_spectra(ck: Checkpoint, layers: list[str], settings: Settings):
    """Yield (layer, eigenvalues, TrapResult) for the named layers of one checkpoint, in file order.

    What figures need beyond the cached numbers: the weights are re-read and the
    shuffle redone with the same per-layer seed, so a figure shows exactly the
    traps that were counted. Layers not in the file are skipped.
    """
    from grokwatch.spectral.traps import find_traps

    wanted = set(layers)
    refs = checkpoint_refs(ck, settings)
    if any(name.endswith(("[q]", "[k]", "[v]")) for name in wanted):
        refs += [r for r in split_qkv_refs(refs, _heads(ck, refs)) if r.part]
    with TensorReader() as reader:
        for ref in refs:
            if ref.layer not in wanted:
                continue
            W = reader.read(ref)
            yield (
                ref.layer,
                esd(W),
                find_traps(W, seed=layer_seed(settings.seed, ref.layer), replicas=settings.replicas),
            )


def _heads(ck: Checkpoint, refs: list[TensorRef]) -> AttentionHeads | None:
    """config.json's head counts, read only when a fused QKV tensor needs them (GPT-NeoX's per-head
    layout, grouped-query attention)."""
    if not needs_heads(refs):
        return None
    f = ck.files[0]
    return config_attention(f if f.is_dir() else f.parent)


def _float_meta(meta: dict, key: str) -> float | None:
    try:
        return float(meta[key])
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class CheckpointResult:
    """What a worker sends back for one checkpoint."""

    rel: str
    step: int | None
    records: list[LayerRecord] = field(default_factory=list)
    error: str | None = None  # whole-file failure, one line
    notes: list[str] = field(default_factory=list)  # one line each: what was skipped and why
    step_unit: str = "step"  # "epoch" for files that record only an epoch (timm)


def analyze_checkpoint(ck: Checkpoint, settings: Settings) -> CheckpointResult:
    """Analyse every selected layer of one checkpoint; never raises for bad input."""
    return analyze_checkpoints([ck], settings)[0]


def why_nothing(ck: Checkpoint, refs: list[TensorRef], settings: Settings) -> str:
    """One line saying why a checkpoint gave no layer to analyse."""
    if not refs:
        return f"{ck.path}: no analysable tensor (no floating-point weights found)"
    two_d = [r for r in refs if len(r.shape) >= 2]
    if not two_d:
        return f"{ck.path}: no analysable tensor (no 2-D tensor among {len(refs)})"
    lora = sorted({r.rank for r in two_d if r.key_b})
    if lora and all(x < settings.min_side for x in lora):
        return (
            f"{ck.path}: no analysable tensor (LoRA updates B·A of rank {', '.join(map(str, lora))} have "
            f"fewer than {settings.min_side} non-zero eigenvalues)"
        )
    big = [r for r in two_d if analysable(r.shape, settings.min_side)]
    if not big:
        largest = max(two_d, key=lambda r: min(r.shape[:2])).shape
        return (
            f"{ck.path}: no analysable tensor (no 2-D tensor with both sides >= {settings.min_side}; "
            f"largest {'x'.join(map(str, largest))})"
        )
    return f"{ck.path}: no analysable tensor (all {len(big)} weight matrices excluded by --layers/--exclude/--no-embeddings)"


TRAIN_METRICS = (
    "act_sparsity",
    "act_inactive",
    "abs_weight_entropy",
    "circuit_kl",
    "l2_norm",
    "train_acc_clean",
    "train_acc_corrupt",
    "train_acc_corrupt_true",
)


def _train_metrics(meta: dict | None) -> dict:
    """`{"train_metrics": {...}}` with the checkpoint-level measures `grokwatch train` stored in the
    metadata (model- and data-dependent ones a scan cannot recompute), or {} when there are none."""
    found = {k: v for k in TRAIN_METRICS if (v := _float_meta(meta or {}, k)) is not None}
    return {"train_metrics": found} if found else {}


def _extra(ck: Checkpoint, r: TensorRef) -> dict:
    """Where a record's matrix came from, when it is not simply the named tensor."""
    extra: dict = {}
    if r.aliases:
        extra["shared_with"] = list(r.aliases)  # tied weights: analysed once, under the first name
    if r.key_b and r.base_key:
        extra["lora"] = {"A": r.key, "B": r.key_b, "scale": r.scale, "delta": "W + scale * B @ A"}
        extra["lora"]["base"] = f"{r.base_file}:{r.base_key}" + (
            " (transposed ΔW)" if r.base_transposed else ""
        )
    elif r.key_b:
        extra["lora"] = {"A": r.key, "B": r.key_b, "scale": r.scale, "delta": "scale * B @ A"}
    if r.source:
        extra["source_key"] = r.source  # the wrapper key of the state dict in a torch file
    if r.part:  # one block of a fused QKV matrix (--split-qkv)
        extra["qkv_part"] = {"key": r.key, "part": r.part, "per_head": r.part_heads or None}
        if r.part_sizes:  # grouped-query attention: the (q, k, v) lengths, per kv group if grouped
            extra["qkv_part"]["sizes"] = list(r.part_sizes)
            extra["qkv_part"]["kv_groups"] = r.part_groups or None
    if ck.step_unit != "step":
        extra["step_unit"] = ck.step_unit
    return extra


def new_record(ck: Checkpoint, r: TensorRef) -> LayerRecord:
    """The record of one selected layer before its numbers: names, shape, accuracies, provenance."""
    return LayerRecord(
        checkpoint=ck.rel,
        step=ck.step,
        layer=r.layer,
        shape=list(r.shape),
        train_acc=_float_meta(ck.meta, "train_acc"),
        test_acc=_float_meta(ck.meta, "test_acc"),
        extra=_extra(ck, r) | _train_metrics(ck.meta),
    )


def read_weights(reader: TensorReader, r: TensorRef) -> np.ndarray:
    """One layer's weights; a large one straight into float64, so it is never held twice.

    Why: above SCRATCH_MAX the Gram step would copy a float32 array into a fresh
    float64 one (12 bytes per element at the peak); reading float64 directly costs
    8 and gives the same values (bf16 and float32 widen exactly).
    """
    wide = 8 * math.prod(r.shape) > SCRATCH_MAX
    return reader.read(r, wide=wide)


def layer_matrix_values(
    reader: TensorReader, r: TensorRef, settings: Settings
) -> tuple[dict, np.ndarray | None]:
    """`matrix_spectrum` of one layer read from its file; a CheckpointError (unreadable file) propagates.

    A large 2-D layer without traps is handed over to `gram_eigenvalues_owned`, which frees
    the weights before the eigensolve (traps need them after, so they keep the usual path).
    """
    try:
        W = read_weights(reader, r)
        measures = weight_entropy_field(W, settings)
        if settings.traps or len(r.shape) != 2 or 8 * math.prod(r.shape) <= SCRATCH_MAX:
            vals, evals = matrix_spectrum(W, settings, r.layer)
            return measures | vals, evals
        box, shape = [W], W.shape
        del W
        try:
            evals = gram_eigenvalues_owned(box)
        except NonFiniteError as e:
            return measures | {"error": str(e)}, None
        return measures | shape_fields(shape, evals, settings), evals
    except (ValueError, np.linalg.LinAlgError) as e:
        return {"error": f"analysis failed: {e}"}, None


def weight_entropy_field(W: np.ndarray, settings: Settings) -> dict:
    """{"abs_weight_entropy": -sum |w| log|w|} with `--weight-entropy`, else {}.

    Opt-in because a log per weight costs ~0.45 ms per 200x784 layer, a fifth of the layer's whole
    analysis; the Frobenius norm (`l2_norm`) comes free with the eigenvalues.
    """
    return {"abs_weight_entropy": weight_measures(W)[1]} if settings.weight_entropy else {}


def fit_values(evals: np.ndarray, settings: Settings) -> dict:
    """`spectrum_fields`, with a failure as the record's error rather than an exception."""
    try:
        return spectrum_fields(evals, settings)
    except (ValueError, np.linalg.LinAlgError) as e:
        return {"error": f"analysis failed: {e}"}


def analyze_checkpoints(cks: list[Checkpoint], settings: Settings) -> list[CheckpointResult]:
    """`analyze_checkpoint` for several checkpoints: every eigensolve first, then every fit.

    Why two passes: a fit is many small numpy calls and an eigensolve evicts the
    caches they run from; grouping the fits of a few checkpoints after their
    eigensolves measured ~0.1 ms less per checkpoint of the paper's MLP (~3 %).
    Only eigenvalues wait between the passes, never weights.
    """
    results, pending = [], []
    for ck in cks:
        try:
            all_refs, refs = analysed_refs(ck, settings)
            notes = list(ck.notes)
            records = []
            with TensorReader() as reader:
                for r in refs:
                    rec = new_record(ck, r)
                    vals, evals = layer_matrix_values(reader, r, settings)
                    set_fields(rec, vals)
                    records.append(rec)
                    if evals is not None:
                        pending.append((rec, evals))
            if not records:
                notes.append(why_nothing(ck, all_refs, settings))
            results.append(CheckpointResult(ck.rel, ck.step, records, notes=notes, step_unit=ck.step_unit))
        except GrokwatchError as e:  # CheckpointError, or a --base that vanished mid-scan
            results.append(CheckpointResult(ck.rel, ck.step, [], error=str(e)))
    for rec, evals in pending:
        set_fields(rec, fit_values(evals, settings))
    return results


def set_fields(rec: LayerRecord, vals: dict) -> None:
    """Copy computed fields onto a record (in order: a later "error" wins, as it should)."""
    for k, v in vals.items():
        setattr(rec, k, v)
