"""Checkpoint layouts written by the real training libraries, on tiny models built from configs (CPU).

Each `write_*` function builds one layout under a folder with the library that
writes it in the wild (transformers, Lightning, peft, accelerate,
huggingface_hub, torch.distributed.checkpoint, DeepSpeed) and returns what a
scan must find there. Nothing is downloaded; tests call these into tmp_path
(a Trainer's training_args.bin and a Lightning .ckpt record absolute paths, so
such files are never committed). Run as a script to write a corpus by hand:

    python tests/checkpoints/layouts.py OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

GPT2_LAYERS = {
    "transformer.wte.weight",
    "transformer.wpe.weight",
    "transformer.h.0.attn.c_attn.weight",
    "transformer.h.0.mlp.c_fc.weight",
    "transformer.h.1.mlp.c_proj.weight",
}


@dataclass
class Layout:
    """What a scan of the folder must report."""

    root: Path
    rels: list[str]  # checkpoints in step order, relative to root
    steps: list[int | None]
    layers: set[str] = field(default_factory=set)  # a subset of the layer names of every checkpoint


def _quiet() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("DISABLE_MLFLOW_INTEGRATION", "TRUE")
    os.environ.setdefault("WANDB_DISABLED", "true")


def tiny_gpt2(seed: int = 0):
    _quiet()
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2)
    return GPT2LMHeadModel(cfg)


def _lm_data(n: int = 8):
    g = torch.Generator().manual_seed(0)
    return [
        {
            "input_ids": torch.randint(0, 64, (16,), generator=g),
            "labels": torch.randint(0, 64, (16,), generator=g),
        }
        for _ in range(n)
    ]


def _trainer(model, out: Path, max_steps: int, save_steps: int):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        str(out),
        max_steps=max_steps,
        save_steps=save_steps,
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        logging_steps=1000,
        disable_tqdm=True,
        seed=0,
    )
    return Trainer(model=model, args=args, train_dataset=_lm_data())


def write_hf_trainer(out: Path) -> Layout:
    """transformers Trainer: checkpoint-2/, checkpoint-4/ and the final model + trainer_state.json on top."""
    tr = _trainer(tiny_gpt2(), out, max_steps=4, save_steps=2)
    tr.train()
    tr.save_model()
    tr.save_state()
    return Layout(out, ["checkpoint-2", "checkpoint-4", "model.safetensors"], [2, 4, 4], GPT2_LAYERS)


def write_hf_sharded(out: Path) -> tuple[Layout, Layout]:
    """save_pretrained with small shards (safetensors index), and the same state dict as
    sharded pytorch_model-*.bin + pytorch_model.bin.index.json (transformers 4.x's layout,
    written here with huggingface_hub.save_torch_state_dict, which it used)."""
    from huggingface_hub import save_torch_state_dict

    m = tiny_gpt2()
    st = out / "safetensors_step_10"
    m.save_pretrained(st, max_shard_size="40KB")
    bn = out / "bin_step_20"
    bn.mkdir(parents=True, exist_ok=True)
    save_torch_state_dict(m.state_dict(), bn, safe_serialization=False, max_shard_size="40KB")
    return (
        Layout(st, ["model.safetensors.index.json"], [None], GPT2_LAYERS),
        Layout(bn, ["pytorch_model.bin.index.json"], [None], GPT2_LAYERS),
    )


def write_tied_bin(out: Path) -> Path:
    """torch.save(model.state_dict()) of GPT-2: lm_head.weight shares storage with transformer.wte.weight."""
    out.mkdir(parents=True, exist_ok=True)
    p = out / "pytorch_model.bin"
    torch.save(tiny_gpt2().state_dict(), p)
    return p


def write_nanogpt(out: Path) -> Layout:
    """nanoGPT's train.py: out_dir/ckpt.pt with the step in iter_num, one unnumbered folder per save."""
    m = tiny_gpt2()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    names = {"alpha": 2000, "bravo": 4000, "charlie": 3000, "delta": 250, "echo": 500, "foxtrot": 1000}
    for name, it in names.items():
        d = out / name
        d.mkdir(parents=True)
        ckpt = {
            "model": m.state_dict(),
            "optimizer": opt.state_dict(),
            "model_args": {"n_layer": 2, "n_head": 2, "n_embd": 32},
            "iter_num": it,
            "best_val_loss": torch.tensor(1.5),
            "config": {"batch_size": 2, "learning_rate": 1e-3},
        }
        torch.save(ckpt, d / "ckpt.pt")
    order = sorted(names, key=names.get)
    return Layout(out, [f"{n}/ckpt.pt" for n in order], sorted(names.values()), GPT2_LAYERS)


def _mlp(seed: int = 0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(20, 48), torch.nn.ReLU(), torch.nn.Linear(48, 12))


def write_lightning(out: Path) -> Layout:
    """Lightning Trainer + ModelCheckpoint every 2 steps: epoch=0-step=2.ckpt, epoch=0-step=4.ckpt."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    class Module(L.LightningModule):
        def __init__(self, width: int = 48):
            super().__init__()
            self.save_hyperparameters()
            self.net = _mlp()

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.randn(32, 20, generator=g), torch.randint(0, 12, (32,), generator=g)
    )
    cb = ModelCheckpoint(dirpath=out, every_n_train_steps=2, save_top_k=-1)
    tr = L.Trainer(
        max_steps=4,
        callbacks=[cb],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    tr.fit(Module(), torch.utils.data.DataLoader(data, batch_size=8))
    return Layout(
        out, ["epoch=0-step=2.ckpt", "epoch=0-step=4.ckpt"], [2, 4], {"net.0.weight", "net.2.weight"}
    )


def write_peft(
    out: Path, r: int = 16, base: Path | None = None, targets: tuple[str, ...] = ("c_attn", "c_fc")
) -> tuple[Layout, object]:
    """peft LoRA adapter on GPT-2's c_attn/c_fc (B initialised randomly so ΔW ≠ 0); returns the model too.

    With `base`, the untouched base model is saved there first (`save_pretrained`), as a user
    who fine-tunes a published model has it.
    """
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=2 * r + 4, target_modules=list(targets), init_lora_weights=False)
    model = tiny_gpt2()
    if base is not None:
        model.save_pretrained(base)
    model = get_peft_model(model, cfg)
    model.save_pretrained(out)
    layers = {"transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_fc.weight"}
    return Layout(out, ["adapter_model.safetensors"], [None], layers), model


def write_peft_trainer(out: Path) -> Layout:
    """transformers Trainer on a peft model: checkpoint-N/ hold adapter_model.safetensors only."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=12, lora_alpha=24, target_modules=["c_attn"], init_lora_weights=False)
    tr = _trainer(get_peft_model(tiny_gpt2(), cfg), out, max_steps=2, save_steps=1)
    tr.train()
    return Layout(out, ["checkpoint-1", "checkpoint-2"], [1, 2], {"transformer.h.0.attn.c_attn.weight"})


def write_accelerate(out: Path) -> Layout:
    """accelerate's save_state with automatic checkpoint naming: checkpoints/checkpoint_0, _1."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    acc = Accelerator(
        cpu=True, project_config=ProjectConfiguration(project_dir=str(out), automatic_checkpoint_naming=True)
    )
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model, opt = acc.prepare(model, opt)
    for _ in range(2):
        loss = model(torch.randn(4, 20)).pow(2).mean()
        acc.backward(loss)
        opt.step()
        acc.save_state()
    return Layout(
        out,
        ["checkpoints/checkpoint_0/model.safetensors", "checkpoints/checkpoint_1/model.safetensors"],
        [0, 1],
        {"0.weight", "2.weight"},
    )


def write_dcp(out: Path) -> Layout:
    """torch.distributed.checkpoint.save (what FSDP writes): step_100/ and step_200/ with .metadata + .distcp."""
    import warnings

    import torch.distributed.checkpoint as dcp

    m = tiny_gpt2()
    for step, name in ((200, "step_200"), (100, "step_100"), (150, "latest")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "torch.distributed is disabled ... single process"
            dcp.save({"model": m.state_dict(), "step": step}, checkpoint_id=str(out / name))
    # `latest` has no step in its name: the saved `step` entry gives 150
    return Layout(
        out, ["step_100", "latest", "step_200"], [100, 150, 200], {"model." + n for n in GPT2_LAYERS}
    )


def write_timm(out: Path) -> Layout:
    """timm's CheckpointSaver files, written as it writes them (timm imports torchvision, whose
    registry wheels are CUDA builds): checkpoint-N.pth.tar, last.pth.tar, model_best.pth.tar with
    epoch, arch, state_dict, optimizer, version, args (an argparse.Namespace) and metric."""
    out.mkdir(parents=True, exist_ok=True)
    m = _mlp()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    ns = argparse.Namespace(model="mlp", lr=0.1, epochs=3, batch_size=8, data_dir="data")
    for epoch in range(3):
        state = {
            "epoch": epoch,
            "arch": "mlp",
            "state_dict": m.state_dict(),
            "optimizer": opt.state_dict(),
            "version": 2,
            "args": ns,
            "metric": 0.5 + 0.1 * epoch,
        }
        torch.save(state, out / f"checkpoint-{epoch}.pth.tar")
        if epoch == 2:
            torch.save(state, out / "last.pth.tar")
        if epoch == 1:
            torch.save(state, out / "model_best.pth.tar")
    return Layout(
        out,
        [
            "checkpoint-0.pth.tar",
            "checkpoint-1.pth.tar",
            "model_best.pth.tar",
            "checkpoint-2.pth.tar",
            "last.pth.tar",
        ],
        [0, 1, 1, 2, 2],
        {"0.weight", "2.weight"},
    )


def write_wrapped(out: Path) -> Layout:
    """resemblyzer-style {'step', 'model_state', 'optimizer_state'} and a custom nesting found generically."""
    out.mkdir(parents=True, exist_ok=True)
    m = _mlp()
    opt = torch.optim.Adam(m.parameters())
    m(torch.randn(2, 20)).sum().backward()
    opt.step()
    torch.save({"step": 10, "model_state": m.state_dict(), "optimizer_state": opt.state_dict()}, out / "a.pt")
    torch.save({"step": 20, "payload": {"weights": m.state_dict()}, "note": "custom"}, out / "b.pt")
    return Layout(out, ["a.pt", "b.pt"], [10, 20], {"0.weight", "2.weight"})


def write_deepspeed(out: Path, stage: int) -> Path:
    """DeepSpeed ZeRO-`stage` on one CPU process: global_step2/ with mp_rank_00_model_states.pt and
    *_optim_states.pt. Needs deepspeed and a gloo process group (set up here)."""
    import deepspeed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("MASTER_PORT", "29533"))
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    cfg = {
        "train_batch_size": 4,
        "zero_optimization": {"stage": stage},
        "optimizer": {"type": "SGD", "params": {"lr": 0.1}},
        "zero_allow_untested_optimizer": True,
    }
    model = _mlp()
    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=cfg)
    for _ in range(2):
        loss = engine(torch.randn(4, 20)).pow(2).mean()
        engine.backward(loss)
        engine.step()
    engine.save_checkpoint(str(out))
    return out


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "layouts-corpus")
    out.mkdir(parents=True, exist_ok=True)
    write_hf_trainer(out / "hf_trainer")
    write_hf_sharded(out / "hf_sharded")
    write_tied_bin(out / "tied")
    write_nanogpt(out / "nanogpt")
    write_lightning(out / "lightning")
    write_peft(out / "peft")
    write_peft_trainer(out / "peft_trainer")
    write_accelerate(out / "accelerate")
    write_dcp(out / "dcp")
    write_timm(out / "timm")
    write_wrapped(out / "wrapped")
    print(json.dumps(sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
