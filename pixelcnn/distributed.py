"""The one module that knows torch.distributed: rank, world size, sharding, reductions and
rank-0 I/O. In one process (no torchrun) every function here is a no-op or the identity, so
the same training and sampling code runs alone or as one of many ranks.

    torchrun --standalone --nproc_per_node 4 -m pixelcnn.train ...     # one machine
    torchrun --nnodes 2 --node_rank R --rdzv_endpoint HOST:PORT --nproc_per_node 8 -m ...

torchrun starts the processes and sets RANK, WORLD_SIZE and LOCAL_RANK; `init` joins them
into a process group: NCCL on CUDA, gloo on the CPU (or the backend asked for). Rank r uses
GPU LOCAL_RANK. No process management of our own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

BACKENDS = ("auto", "nccl", "gloo")


@dataclass(frozen=True)
class World:
    """This process's place among the ranks (rank 0 of 1 when not distributed)."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one rank that writes files, prints and shows progress."""
        return self.rank == 0


def launched() -> bool:
    """True inside a process started by torchrun (or another launcher setting WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device, backend: str = "auto") -> tuple:
    """Join the process group torchrun set up; returns (World, the device this rank uses).

    device: the one asked for (cuda: each rank takes cuda:LOCAL_RANK; an explicit cuda:N is
    refused under torchrun, where it would put every rank on one GPU). backend: auto (NCCL on
    CUDA, gloo on the CPU), nccl or gloo. Not launched by torchrun: World() and device."""
    if backend not in BACKENDS:
        raise ValueError(f"--dist-backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if not launched():
        return World(), device
    world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                  int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        if device.index is not None:
            raise ValueError(f"--device {device} under torchrun: give --device cuda (each rank "
                             "takes the GPU of its LOCAL_RANK)")
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ValueError("--dist-backend nccl needs CUDA devices; use gloo on the CPU")
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=world.rank, world_size=world.size,
                                device_id=device if backend == "nccl" else None)
    return world, device


def shutdown():
    """Leave the process group (at the end of a distributed command)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier():
    if dist.is_initialized():
        dist.barrier()


def shard(items, world: World):
    """Rank's contiguous share of items (a tensor or a sequence): the first len % size ranks
    take one more. Concatenating every rank's share in rank order gives items back."""
    n, k = len(items), world.size
    start = world.rank * (n // k) + min(world.rank, n % k)
    return items[start:start + n // k + (world.rank < n % k)]


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of t over ranks (t itself in one process)."""
    if dist.is_initialized():
        t = t.clone()
        dist.all_reduce(t, dist.ReduceOp.SUM)
    return t


def gather(obj, world: World) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank (picklable objects; tensors go through
    the CPU)."""
    if not world.distributed:
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj, world: World):
    """Rank 0's obj, on every rank."""
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """model under DistributedDataParallel (gradients averaged over ranks in backward), or
    model itself in one process."""
    if not world.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                     gradient_as_bucket_view=True)
