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


RAY_CLIENT_UNSUPPORTED = (
    "emoclip batch cannot run over Ray Client (a ray:// address): Ray Data needs its driver "
    "inside the cluster, and a Ray Client connection has none (Ray's limitation, not a setting). "
    "Run the command on a node of the cluster, e.g. the head node, with --address auto (results "
    "go to --out on that node), or submit it there as a Ray job: ray job submit "
    "--address http://HEAD_IP:8265 -- emoclip batch ... --address auto"
)


TOKEN_HINT = (
    "If the cluster was started with `ray start` (Ray 2.59 and later use token authentication), "
    "this machine needs the cluster's token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<the "
    "token every node was started with> (see the README, Large collections)"
)


class RayClientError(ValueError):
    """`run_batch` was asked to use Ray Client (``ray://``), which Ray Data does not support."""


def check_address(address: str | None) -> None:
    """RayClientError for a Ray Client address (`address`, else ``RAY_ADDRESS``), before any
    work: Ray Data's streaming executor needs the driver's core worker, which Ray Client lacks."""
    value = (address or os.environ.get("RAY_ADDRESS") or "").strip()
    if value.lower().startswith("ray://"):
        raise RayClientError(f"{RAY_CLIENT_UNSUPPORTED} (address {value})")


def check_not_client(ray) -> None:
    """RayClientError when this process is already connected to Ray through Ray Client."""
    try:
        from ray.util.client import ray as client
    except ImportError:  # pragma: no cover - every Ray with Ray Data has it
        return
    if client.is_connected():
        raise RayClientError(RAY_CLIENT_UNSUPPORTED)


def start_ray(ray, address: str | None, num_cpus: int | None) -> None:
    """Join `address` (or ``RAY_ADDRESS``; ``auto`` or a cluster's ``HOST:PORT``, never
    ``ray://``: `check_address`), else start Ray on this machine with `num_cpus` CPUs (default:
    all), without dashboard, log forwarding or prestarted idle workers."""
    if address or os.environ.get("RAY_ADDRESS"):
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except ConnectionError as exc:  # a wrong or missing token looks like this too
            raise ConnectionError(f"{exc}. {TOKEN_HINT}") from None
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


__all__ = [
    "RAY_CLIENT_UNSUPPORTED",
    "TOKEN_HINT",
    "RayClientError",
    "check_address",
    "check_not_client",
    "import_ray",
    "pool_size",
    "start_ray",
    "stop_ray",
]
