"""Training callbacks: grokwatch inside the training loop, no CLI needed.

monitor.py    `Monitor(model, every=N)`: plain PyTorch loops (`grokwatch.Monitor`)
lightning.py  `GrokwatchCallback`, a `lightning.pytorch.Callback` (extra: grokwatch[lightning])
hf.py         `GrokwatchCallback`, a `transformers.TrainerCallback` (extra: grokwatch[hf])

Each framework is imported only by its own module, so neither is a dependency of grokwatch.
"""

from grokwatch.callbacks.monitor import Monitor, MonitorResult

__all__ = ["Monitor", "MonitorResult"]
