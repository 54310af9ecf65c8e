"""Run by tests/test_train.py under torchrun: the same train() on 2 CPU ranks (gloo).

    python -m torch.distributed.run --nproc_per_node=2 --standalone tests/_ddp_worker.py OUT_DIR

Each rank writes its final weights to OUT_DIR/rank{RANK}.safetensors (loss history in the metadata)
so the test can check that DDP kept the ranks identical and that the loss fell.
"""

import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from hitchhiker.checkpoint import save_weights
from hitchhiker.train import TrainConfig, seed_everything, train

CONFIG = dict(
    steps=40,
    batch_size=32,
    lr=0.1,
    warmup_steps=4,
    weight_decay=0.0,
    log_every=10,
    checkpoint_every=20,
    device="cpu",
    precision="fp32",
)


def make_dataset() -> TensorDataset:
    """y = x @ w + small noise, 256 samples of 8 features."""
    g = torch.Generator().manual_seed(123)
    x = torch.randn(256, 8, generator=g)
    w = torch.randn(8, 1, generator=g)
    return TensorDataset(x, x @ w + 0.01 * torch.randn(256, 1, generator=g))


def make_model() -> nn.Module:
    seed_everything(0)
    return nn.Linear(8, 1)


def loss_fn(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    torch.set_num_threads(1)  # two ranks share the machine's cores
    result = train(
        make_model(), make_dataset(), loss_fn, TrainConfig(**CONFIG), out / "run", progress=False
    )
    meta = {"losses": result.losses, "world_size": int(os.environ["WORLD_SIZE"])}
    save_weights(out / f"rank{os.environ['RANK']}.safetensors", result.model, metadata=meta)
