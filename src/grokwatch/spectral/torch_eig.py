"""Eigenvalues of W^T W with torch on any device, batched over matrices of the same size.

Why batched: one `torch.linalg.eigvalsh` call on a (B, M, M) stack keeps a GPU
busy where B separate calls would each wait on a launch and a copy back; an
LLM's attention projections (and, once oriented, its MLP matrices) share one M.
Why Grams are formed as layers arrive: the host holds one layer at a time; only
the M x M Grams wait on the device, and a group is solved as soon as it holds
`batch_bytes`, so device memory is bounded too. Everything is float64, as on the
CPU path; eigenvalues agree with `gram_eigenvalues` to rounding (~1e-15 relative).

    b = GramBatcher("cuda")
    keys = [b.add(W) for W in matrices]      # Gram on the device, W can be freed
    evals = b.solve()                        # {key: ascending float64 numpy eigenvalues}
"""

from __future__ import annotations

import numpy as np

from grokwatch.spectral.esd import NonFiniteError

__all__ = ["BATCH_BYTES", "GramBatcher"]

BATCH_BYTES = 1 << 30  # Grams of one size kept on the device before they are solved together


class GramBatcher:
    """Collects Gram matrices on a torch device and eigensolves same-size ones in batches."""

    def __init__(self, device: str = "cuda", batch_bytes: int = BATCH_BYTES) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.batch_bytes = batch_bytes
        self._groups: dict[int, list[tuple[int, object]]] = {}  # M -> [(key, Gram on device)]
        self._done: dict[int, np.ndarray] = {}
        self._next = 0

    def add(self, W: np.ndarray) -> int:
        """Form W^T W (N >= M after orientation) in float64 on the device; returns a key for `solve`.

        Raises NonFiniteError as `gram_eigenvalues` does (a non-finite diagonal of the Gram).
        """
        torch = self.torch
        A = torch.from_numpy(np.ascontiguousarray(W)).to(self.device, dtype=torch.float64)
        if A.shape[0] < A.shape[1]:
            A = A.T
        G = A.T @ A
        del A
        if not bool(torch.isfinite(G.diagonal().sum())):
            raise NonFiniteError(int((~np.isfinite(W)).sum()))
        key, self._next = self._next, self._next + 1
        group = self._groups.setdefault(G.shape[0], [])
        group.append((key, G))
        if len(group) * G.numel() * 8 >= self.batch_bytes:
            self._solve_group(G.shape[0])
        return key

    def _solve_group(self, m: int) -> None:
        torch = self.torch
        group = self._groups.pop(m, [])
        if not group:
            return
        stack = torch.stack([g for _, g in group])
        group_keys = [k for k, _ in group]
        del group
        ev = torch.linalg.eigvalsh(stack).clamp_min_(0.0).cpu().numpy()  # rounding leaves zero modes < 0
        del stack
        for k, row in zip(group_keys, ev, strict=True):
            self._done[k] = row

    def discard(self) -> None:
        """Forget every Gram and result so far (the checkpoint they came from failed)."""
        self._groups.clear()
        self._done.clear()

    def solve(self) -> dict[int, np.ndarray]:
        """Eigensolve every Gram still waiting; returns (and forgets) every result so far, by key."""
        for m in list(self._groups):
            self._solve_group(m)
        done, self._done = self._done, {}
        return done
