"""The two models `grokwatch train` builds.

Module names are chosen so that the checkpoint tensor names are the ones `scan` shows:
`fc1.weight`, `fc2.weight`, `fc3.weight` (MNIST) and `embed.weight`, `fc1.weight`,
`fc2.weight` (modular arithmetic); the transformer's are listed in train/transformer.py.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "ModularMLP", "OneHotMLP", "build_model"]


class MLP(nn.Module):
    """Omnigrok's MNIST MLP: 784 -> width -> width -> 10 with ReLU."""

    def __init__(self, width: int = 200, n_in: int = 784, n_out: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(n_in, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class ModularMLP(nn.Module):
    """Embed a and b with one shared table, concatenate, one hidden ReLU layer, logits over p.

    Why learned embeddings rather than one-hot inputs: with weight decay the shared table
    learns the Fourier features of Z_p quickly (train 100% by ~75 steps, test >= 95% by
    ~800 full-batch steps at p = 97 on a 2-core CPU), and the (p, embed_dim) table is a
    matrix the scanner can analyse like any other layer.
    """

    def __init__(self, p: int, embed_dim: int = 128, width: int = 256):
        super().__init__()
        self.embed = nn.Embedding(p, embed_dim)
        self.fc1 = nn.Linear(2 * embed_dim, width)
        self.fc2 = nn.Linear(width, p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(x).flatten(1)  # (n, 2, d) -> (n, 2d)
        return self.fc2(torch.relu(self.fc1(e)))


class OneHotMLP(nn.Module):
    """Prieto et al.'s modular-arithmetic MLP: one-hot a and b concatenated (2p inputs), two hidden
    ReLU layers of `width`, logits over p, no biases (`fc1.weight` is width x 2p).

    Why one-hot rather than an embedding: it is the setup in which the paper compares softmax
    cross-entropy with StableMax and ⊥Grad, and the first layer then plays the embedding's role.
    """

    def __init__(self, p: int, width: int = 200):
        super().__init__()
        self.p = p
        self.fc1 = nn.Linear(2 * p, width, bias=False)
        self.fc2 = nn.Linear(width, width, bias=False)
        self.fc3 = nn.Linear(width, p, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.one_hot(x, self.p).flatten(1).to(self.fc1.weight.dtype)  # (n, 2p)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(h)))))


def build_model(config, dtype: torch.dtype) -> nn.Module:
    """Default PyTorch init, then every parameter multiplied by `init_scale` (Omnigrok's alpha_0).

    A large init (x8) puts the network far outside the "Goldilocks zone" of weight norms, which
    is what makes MNIST grok (memorize first, generalize much later). Uses the global torch RNG,
    so the caller seeds it first.
    """
    if config.task == "mnist":
        model: nn.Module = MLP(width=config.width)
    elif config.model == "transformer":
        from grokwatch.train.transformer import ModularTransformer

        model = ModularTransformer(
            config.p, config.width, config.layers, config.heads, config.d_mlp, config.layer_norm
        )
    elif config.arch == "onehot":
        model = OneHotMLP(config.p, width=config.width)
    else:
        model = ModularMLP(config.p, embed_dim=config.embed_dim, width=config.width)
    model = model.to(dtype)
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(config.init_scale)
    return model
