"""Data parallelism inside one run: a 1-D mesh over every device, the batch split along its 'data' axis.

Parameters, optimiser state and the on-device data splits are replicated; each step's batch is
constrained to the data sharding, so XLA's SPMD partitioner gives every device its slice of the batch
and all-reduces the gradients (batch means and sums stay global: the loss is that of the whole batch).
Batch sizes are global. Over several hosts (SLURM, TPU pods) every process runs the same program on
the same global arrays after `initialize_distributed`.

A bundle of sweep members (aejax/bundle.py) is split the other way: over a 1-D 'members' mesh of this process's
devices, each device trains whole members on replicated data, with no traffic between devices.
"""
import os
from collections.abc import Mapping
from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from aejax.errors import ConfigError

DATA_AXIS = "data"
MEMBER_AXIS = "members"


def is_multiprocess_launch(env: Mapping[str, str]) -> bool:
  """True when this process is one of several: a SLURM step of more than one task, an explicit JAX
  coordinator, or a TPU slice with several workers."""
  return (int(env.get("SLURM_NTASKS", "1")) > 1 or bool(env.get("JAX_COORDINATOR_ADDRESS"))
          or "," in env.get("TPU_WORKER_HOSTNAMES", ""))


def initialize_distributed() -> bool:
  """Joins the other processes of a multi-process launch (before any JAX computation); True if it did.

  `jax.distributed.initialize` finds the coordinator, process count and id in the SLURM or TPU
  environment by itself.
  """
  if not is_multiprocess_launch(os.environ):
    return False
  jax.distributed.initialize()
  return True


def data_mesh() -> Mesh:
  """A 1-D mesh over all devices of all processes, named 'data'."""
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def member_mesh() -> Mesh:
  """A 1-D mesh over this process's devices, named 'members'."""
  return jax.make_mesh((jax.local_device_count(),), (MEMBER_AXIS,), axis_types=(AxisType.Auto,),
                       devices=jax.local_devices())


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array."""
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over the 'data' axis; the other dimensions whole."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def member_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (member) dimension split over the 'members' axis; the other dimensions whole."""
  return NamedSharding(mesh, PartitionSpec(MEMBER_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """`tree`'s arrays copied to every device of `mesh` (on several hosts, each must pass the same values)."""
  return jax.device_put(tree, replicated(mesh))


def shard_batch(tree: Any, mesh: Mesh) -> Any:
  """Inside a jitted function: `tree`'s arrays constrained to be split along their leading dimension."""
  return jax.lax.with_sharding_constraint(tree, batch_sharded(mesh))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  """A `ConfigError` unless the global batch splits evenly over the mesh's devices."""
  n = mesh.size
  if batch_size % n:
    raise ConfigError(f"config.batch_size={batch_size} does not split over the {n} devices of this run: "
                      f"use a multiple of {n}, e.g. --config.batch_size={max(n, batch_size // n * n)}")


def sync_each_step(mesh: Mesh) -> bool:
  """True for several CPU devices in one process, where the loop must wait for each step (and each evaluation
  batch) before the next.

  XLA:CPU runs each device's part of a program on a shared thread pool and meets the others at every
  all-reduce; with two such programs in flight on a few cores, the parts of the next can hold every thread
  while a part of the current one waits for a thread: a deadlock (seen here with 4 forced devices on 2
  cores, after some hundred steps dispatched without waiting). GPUs and TPUs queue each device's work in
  order and need no wait.
  """
  return mesh.size > 1 and mesh.devices.flat[0].platform == "cpu"


def round_up(size: int, mesh: Mesh) -> int:
  """The smallest multiple of the mesh's device count that is >= `size`."""
  return -(-size // mesh.size) * mesh.size
