"""Jobs for :func:`bnlib.distributed.run`: the chapter's run and the tests' workers.

Each is a top-level function, so that the processes ``run`` spawns can import it.
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist

from bnlib.distributed import SyncBatchNorm2d


def train_worker(rank: int, world_size: int, jobs: list[dict]) -> list[dict]:
    """Run each job on a fresh :class:`SyncBatchNorm2d`: train on this rank's batches, then
    evaluate. A job that raises records its error and the next job runs.

    A job holds ``kwargs`` (the module's settings; a list gives each rank its own),
    optional ``weight`` and ``bias``, and per rank (lists indexed by rank) ``batches``
    (the inputs of the training steps), optional ``dys`` (one dy per batch) and
    ``eval_input``. Its result: for the last step ``y``, ``dx``, ``grad_weight``,
    ``grad_bias``; the state dict after training; ``eval_y``; or ``error`` (the
    exception's type and message) and ``seconds`` (how long until it was raised).
    """
    return [_train_job(rank, world_size, job) for job in jobs]


def _train_job(rank: int, world_size: int, job: dict) -> dict:
    kwargs = job.get("kwargs", {})
    if isinstance(kwargs, list):
        kwargs = kwargs[rank]
    bn = SyncBatchNorm2d(**kwargs)
    if bn.affine and job.get("weight") is not None:
        bn.weight[...] = job["weight"]
        bn.bias[...] = job["bias"]
    batches = job["batches"][rank]
    dys = job["dys"][rank] if job.get("dys") is not None else [None] * len(batches)
    out: dict = {"world_size": dist.get_world_size(), "repr": repr(bn)}
    start = time.monotonic()
    try:
        for x, dy in zip(batches, dys, strict=True):
            out["y"] = bn(x)
            if dy is not None:
                out["dx"] = bn.backward(dy)
                out["grad_weight"], out["grad_bias"] = bn.grad_weight, bn.grad_bias
        out["state"] = dict(bn.state_dict())
        if job.get("eval_input") is not None:
            out["eval_y"] = bn.eval()(job["eval_input"][rank])
    except (ValueError, TypeError, RuntimeError) as error:
        out["error"] = f"{type(error).__name__}: {error}"
        out["seconds"] = time.monotonic() - start
    return out


def torch_sync_batch_norm_worker(rank: int, world_size: int, num_features: int) -> dict:
    """Call ``torch.nn.SyncBatchNorm`` on a CPU tensor: in training, and in eval mode."""
    bn = torch.nn.SyncBatchNorm(num_features)
    x = torch.randn(4, num_features, 3, 3, generator=torch.Generator().manual_seed(rank))
    out = {}
    try:
        bn(x)
        out["train_error"] = None
    except Exception as error:  # what torch says, for the page
        out["train_error"] = f"{type(error).__name__}: {error}"
    bn.eval()
    with torch.no_grad():
        out["eval_y"] = bn(x).numpy()
        out["eval_expected"] = torch.nn.functional.batch_norm(
            x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False
        ).numpy()
    return out


def ddp_gradient_worker(rank: int, world_size: int) -> dict:
    """What ``DistributedDataParallel`` does with parameter gradients: a one-weight model
    whose gradient on rank r is r + 1; returns that local gradient and DDP's."""
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    ddp(torch.tensor([[rank + 1.0]])).sum().backward()
    return {"local": rank + 1.0, "ddp": model.weight.grad.item()}


def demo_worker(rank: int, world_size: int, jobs: list[dict], num_features: int) -> dict:
    """The chapter's run, one start of the processes for all: :func:`train_worker` on
    ``jobs``, :func:`torch_sync_batch_norm_worker` and :func:`ddp_gradient_worker`."""
    return {
        "jobs": train_worker(rank, world_size, jobs),
        "torch": torch_sync_batch_norm_worker(rank, world_size, num_features),
        "ddp": ddp_gradient_worker(rank, world_size),
    }
