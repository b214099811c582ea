"""Ray for a batch run: importing it, starting a local Ray or joining a cluster, sizing the actor
pool, and stopping the local Ray it started."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def import_ray():
    """The `ray` module; ImportError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError("batch analysis needs Ray: pip install 'emoclip[scale]'") from None
    return ray


# Ray's own setting (RayConfig, read from the environment by the processes ray.init starts): no
# idle workers started in advance for the first driver. The actors get their own processes anyway,
# and on a small machine those spare workers only compete with them for the CPU while starting.
NO_PRESTART = {"RAY_prestart_worker_first_driver": "0"}


def start_ray(ray, address: str | None, num_cpus: int | None) -> None:
    """Join `address` (or ``RAY_ADDRESS``), else start Ray on this machine with `num_cpus` CPUs
    (default: all), without dashboard, log forwarding or prestarted idle workers."""
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        return
    saved = {key: os.environ.get(key) for key in NO_PRESTART}
    os.environ.update({k: v for k, v in NO_PRESTART.items() if saved[k] is None})
    try:
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=True,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


def stop_ray(ray) -> None:
    """Shut down the Ray this process started (`start_ray` without an address).

    ``ray.shutdown`` stops Ray's processes one after another, giving each a second after SIGTERM;
    the autoscaler monitor (idle on one machine, and holding no state) always uses the whole
    second, as its SIGTERM handler reports to the GCS that is already gone. It is killed first.
    """
    try:
        from ray._private import ray_constants, worker  # not public: skipped if it changes

        node = worker._global_node
        monitors: list = (
            node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []) if node else []
        )
        for info in monitors:
            info.process.kill()
            info.process.wait(timeout=5)
    except Exception as exc:  # the plain shutdown below still stops everything
        log.debug("could not stop Ray's monitor first: %s", exc)
    ray.shutdown()


def pool_size(ray, workers: int | None, cpus: float, gpus: float, pending: int) -> int:
    """Actors for `pending` inputs: `workers`, else as many as the cluster's CPUs (and GPUs) fit."""
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        return min(int(workers), pending)
    resources = ray.cluster_resources()
    n = int(resources.get("CPU", 1) // max(cpus, 1e-9))
    if gpus:
        n = min(n, int(resources.get("GPU", 0) // gpus))
    if n < 1:
        raise ValueError(
            f"the Ray cluster has {resources.get('CPU', 0)} CPUs and {resources.get('GPU', 0)} "
            f"GPUs: not enough for one worker of {cpus} CPUs and {gpus} GPUs"
        )
    return max(1, min(n, pending))


__all__ = ["import_ray", "pool_size", "start_ray", "stop_ray"]
