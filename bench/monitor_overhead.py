"""Overhead of `grokwatch.Monitor` on training wall time, at the default cadence.

    python bench/monitor_overhead.py [--steps 3000] [--every 500] [--repeats 3]

Two models: the paper's MNIST MLP (784-200-200-10, init x8, AdamW, batch 200, as
`grokwatch train` builds it) and a small GPT-2 built from a config (2 layers,
n_embd 128, context 64, batch 8). For each: the same seeded training loop run
without and with a Monitor (traps on, as the callbacks default), alternating, in
this process; prints the median wall time of each and the ratio. The monitor's
last analysis is waited for inside the timed region (`close()`), so the ratio
counts all of its work that overlapped training.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from grokwatch import Monitor


def mlp_case():
    from grokwatch.train.models import MLP

    torch.manual_seed(0)
    model = MLP(width=200)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0)
    x, y = torch.randn(1000, 784), torch.randint(0, 10, (1000,))

    def batch(i):
        j = (i * 200) % 1000
        return x[j : j + 200], torch.nn.functional.one_hot(y[j : j + 200], 10).float()

    def loss(m, b):
        return torch.nn.functional.mse_loss(m(b[0]), b[1])

    return model, batch, loss


def gpt2_case():
    import transformers

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=128, vocab_size=512, n_positions=64)
    model = transformers.GPT2LMHeadModel(cfg)
    data = torch.randint(0, 512, (64, 64))

    def batch(i):
        j = (i * 8) % 64
        return data[j : j + 8]

    def loss(m, b):
        return m(input_ids=b, labels=b).loss

    return model, batch, loss


def run(case, steps: int, every: int | None) -> float:
    model, batch, loss_fn = case()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    mon = Monitor(model, every=every) if every else None
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        loss_fn(model, batch(i)).backward()
        opt.step()
        if mon is not None:
            mon.step(i)
    if mon is not None:
        mon.close()
    dt = time.perf_counter() - t0
    if mon is not None:
        print(f"    analysed {len(mon.results)} snapshots, skipped {mon.skipped}", flush=True)
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training")
    ap.add_argument("--cases", default="mlp,gpt2")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)  # as `grokwatch train` does: the x8 init otherwise hits subnormal floats
    cases = {"mlp": ("paper MLP 784-200-200-10", mlp_case), "gpt2": ("GPT-2 2x128, ctx 64", gpt2_case)}
    for key in a.cases.split(","):
        name, case = cases[key]
        run(case, 50, None)  # warm-up
        base, mon = [], []
        for _ in range(a.repeats):
            base.append(run(case, a.steps, None))
            mon.append(run(case, a.steps, a.every))
        b, m = statistics.median(base), statistics.median(mon)
        print(
            f"{name}: {a.steps} steps, every {a.every}: baseline {b:.2f} s, with Monitor {m:.2f} s, "
            f"overhead {100 * (m / b - 1):+.1f} %",
            flush=True,
        )


if __name__ == "__main__":
    main()
