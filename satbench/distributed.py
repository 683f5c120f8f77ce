"""Many hosts: ``jax.distributed`` to find the processes, then each runs its own slice.

Process ``I`` of ``N`` runs the plan's ``I``-th of ``N`` cost-balanced slices (exactly
``--shard I/N``) on its own local devices and writes the rows of its own configs as
parts under the shared ``--out``, with its own ``manifest-shard-I-of-N.json``.
Processes share nothing but that folder and one barrier at the end, after which
process 0 merges the tables.

Why not one global program over a mesh of every host's devices: lanes never talk to
each other, so a global program would buy nothing but lockstep. Every process would
wait for the slowest at every chunk; all would have to agree on what is already
finished before planning (a rerun after a crash) and replay each other's
out-of-memory retries. As independent slices, a process that dies loses only its
unfinished chunks, and rerunning the same command resumes every slice.
"""

from __future__ import annotations

from satbench import spec


def check_options(distributed: bool, coordinator: str | None, num_processes: int | None,
                  process_id: int | None, shard, fresh: bool) -> tuple[str, int, int] | None:
    """Validate the ``--distributed`` options; (coordinator, N, I) when given explicitly,
    None for auto-detection. Raises a one-line ``SpecError``."""
    explicit = (coordinator, num_processes, process_id)
    given = [x is not None for x in explicit]
    if not distributed:
        if any(given):
            raise spec.SpecError("--coordinator, --num-processes and --process-id need --distributed")
        return None
    if shard is not None:
        raise spec.SpecError("--shard and --distributed both split the sweep; use one of them")
    if fresh:
        raise spec.SpecError("--fresh with --distributed would delete other processes' results; clear --out first")
    if not any(given):
        return None
    if not all(given):
        raise spec.SpecError("--distributed takes all of --coordinator HOST:PORT, --num-processes N and "
                             "--process-id I, or none of them (auto-detect)")
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise spec.SpecError(f"--coordinator must be HOST:PORT with a port in 1..65535, got {coordinator!r}")
    if num_processes < 1:
        raise spec.SpecError(f"--num-processes must be >= 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise spec.SpecError(f"--process-id must be in [0, {num_processes}), got {process_id}")
    return coordinator, num_processes, process_id


def initialize(explicit: tuple[str, int, int] | None = None) -> tuple[int, int]:
    """``jax.distributed.initialize`` (auto-detected, or with ``explicit`` (coordinator, N, I));
    returns (process index, process count). Must run before any other JAX call."""
    import jax

    try:
        if explicit is None:
            jax.distributed.initialize()
        else:
            coordinator, n, i = explicit
            jax.distributed.initialize(coordinator_address=coordinator, num_processes=n, process_id=i)
    except ValueError as err:  # nothing to auto-detect
        raise spec.SpecError(f"--distributed: no cluster detected ({err}); give --coordinator HOST:PORT "
                             "--num-processes N --process-id I") from None
    return jax.process_index(), jax.process_count()


def process_slice() -> tuple[int, int]:
    """(index, count) of this process, for a sweep that runs under ``jax.distributed``."""
    import jax

    if not jax.distributed.is_initialized():
        raise spec.SpecError("distributed=True needs jax.distributed.initialize() first "
                             "(satbench.distributed.initialize)")
    return jax.process_index(), jax.process_count()


def barrier(name: str) -> None:
    """Wait until every process reaches ``name`` (a tiny all-reduce over every device)."""
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)
