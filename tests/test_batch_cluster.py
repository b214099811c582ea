"""`emoclip batch --address HOST:PORT` on a real two-node cluster with Ray's token authentication
(issue #19, 7): exactly the README's lines.

A head (127.0.0.2) and a second node (127.0.0.3) are started with ``ray start --block``, both
with ``RAY_AUTH_MODE=token`` and one ``RAY_AUTH_TOKEN`` (loopback addresses other than 127.0.0.1
stay on loopback; Ray turns 127.0.0.1 into the host's outward address). Then:

* a driver with another token is refused, and ``emoclip batch`` says how to set the token;
* ``emoclip batch --address`` over four clips while the test kills one of its workers mid-run:
  every input is answered once;
* Ray's default of three kills per input: a worker that dies on one input every time gives that
  input an error row after the third death, and the other inputs are answered.

Every process the test starts is stopped at the end, bounded in time: each ``ray start --block``
runs in its own process group (killed with it), and the worker processes Ray starts in groups of
their own are found as descendants of those and killed too. ``ray stop`` is not used: it stops
every Ray on the machine, other users' included.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import ray  # noqa: F401 - the scale extra CI installs: a missing ray fails here

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
TESTS = Path(__file__).resolve().parent
RAY_CLI = [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]
HEAD, NODE = "127.0.0.2", "127.0.0.3"


def _free_port(host: str = "127.0.0.1") -> int:
    """A free port outside Ray's default worker port range (10002-19999)."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if not 10000 <= port <= 20000:
            return port


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def _children() -> dict[int, list[int]]:
    """ppid -> pids of every process (from /proc)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(roots: list[int]) -> list[int]:
    tree, found, todo = _children(), [], list(roots)
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _stop(procs: list[subprocess.Popen]) -> None:
    """Stop the `ray start --block` processes, their groups and every descendant, in ~20 s."""
    others = _descendants([p.pid for p in procs])
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=10)
    for pid in others:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _run(cmd: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_model):
    from emoclip.testing.media import moving_face_frames, write_video
    from emoclip.weights.files import save_checkpoint

    root = tmp_path_factory.mktemp("cluster")
    weights = save_checkpoint(tiny_model.state_dict(), tiny_model.config, root / "m.safetensors")
    clips = root / "clips"
    clips.mkdir()
    for i in range(4):
        write_video(clips / f"c{i}.webm", moving_face_frames(16, size=(240, 320), seed=i), fps=8)
    crash = root / "crash"
    crash.mkdir()
    shutil.copy(clips / "c0.webm", crash / "poison.webm")  # batch_helpers.CrashingWorker dies
    shutil.copy(clips / "c1.webm", crash / "a.webm")
    return {"root": root, "weights": str(weights), "clips": clips, "crash": crash}


def test_token_auth_cluster_kill_mid_run_and_three_kills(data, tmp_path):
    token = secrets.token_hex(32)
    home = tmp_path / "home"  # no ~/.ray/auth_token of the user's
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {
        "HOME": str(home),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "HF_HUB_OFFLINE": "1",
        "EMOCLIP_PRECISION": "fp32",
        "PYTHONPATH": os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]),
    }
    port = _free_port(HEAD)
    temp = tempfile.mkdtemp(prefix="rtk", dir="/tmp")  # short: Ray's socket paths must fit
    log = open(tmp_path / "ray.log", "w")
    common = ["--block", "--num-cpus=1", "--disable-usage-stats"]
    procs: list[subprocess.Popen] = []
    try:
        head_args = ["start", "--head", f"--node-ip-address={HEAD}", f"--port={port}"]
        head_args += ["--include-dashboard=false", f"--temp-dir={temp}"]
        head_args += [f"--ray-client-server-port={_free_port(HEAD)}"]
        head_args += [f"--dashboard-agent-listen-port={_free_port(HEAD)}"]
        procs.append(
            subprocess.Popen(
                RAY_CLI + head_args + common, env=env, stdout=log, stderr=log,
                start_new_session=True,
            )
        )  # fmt: skip
        _wait(lambda: _port_open(HEAD, port), procs, "the head's GCS port")
        node_args = ["start", f"--address={HEAD}:{port}", f"--node-ip-address={NODE}"]
        node_args += [f"--dashboard-agent-listen-port={_free_port(NODE)}"]
        procs.append(
            subprocess.Popen(
                RAY_CLI + node_args + common, env=env, stdout=log, stderr=log,
                start_new_session=True,
            )
        )  # fmt: skip
        probe = (
            f"import ray; ray.init(address='{HEAD}:{port}', logging_level='ERROR'); "
            "print(sorted(n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']))"
        )
        _wait(
            lambda: f"['{HEAD}', '{NODE}']" in _run([sys.executable, "-c", probe], env, 120).stdout,
            procs,
            "both nodes alive",
        )
        address = f"{HEAD}:{port}"
        batch = [sys.executable, "-m", "emoclip", "batch", "--model", data["weights"], "--quiet"]

        # a driver without the cluster's token is refused, and told what to set
        wrong = env | {"RAY_AUTH_TOKEN": secrets.token_hex(32)}
        res = _run(
            batch + [str(data["clips"]), "--out", str(tmp_path / "o0"), "--address", address], wrong
        )
        assert res.returncode == 1 and "RAY_AUTH_TOKEN" in res.stderr, res.stderr[-2000:]

        # the README's line, one of its workers killed mid-run: every input answered once
        killed: list[int] = []
        stop = threading.Event()
        killer = threading.Thread(target=_kill_one_busy_worker, args=(procs, killed, stop))
        killer.start()
        out = tmp_path / "out"
        cmd = batch + [
            str(data["clips"]),
            "--out",
            str(out),
            "--address",
            address,
            "--workers",
            "2",
        ]
        try:
            res = _run(cmd, env)
        finally:
            stop.set()
            killer.join(30)
        assert res.returncode == 0, res.stderr[-3000:]
        assert killed, "no worker was killed: the run ended before one was busy"
        from emoclip.batch import read_results

        rows = read_results(out).to_pylist()
        assert sorted(r["name"] for r in rows) == [f"c{i}.webm" for i in range(4)]
        assert all(r["error"] is None for r in rows)
        assert len({r["worker"].split(":")[1] for r in rows}) >= 2  # more than one process

        # the default of three kills per input: the fourth start is an error row instead
        script = (
            "from batch_helpers import CrashingWorker\n"
            "from emoclip.batch import run_batch\n"
            f"s = run_batch([{str(data['crash'])!r}], {str(tmp_path / 'o3')!r}, "
            f"model={data['weights']!r}, address={address!r}, workers=1, "
            "worker_class=CrashingWorker)\n"
            "print('DONE', s.done, s.errors)\n"
        )
        res = _run([sys.executable, "-c", script], env)
        assert "DONE 2 1" in res.stdout, res.stderr[-3000:]
        rows = {r["name"]: r for r in read_results(tmp_path / "o3").to_pylist()}
        assert "stopped 3 times" in rows["poison.webm"]["error"]
        assert rows["a.webm"]["error"] is None and rows["a.webm"]["top"]
    finally:
        _stop(procs)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _wait(ready, procs: list[subprocess.Popen], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert all(p.poll() is None for p in procs), f"a ray start exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1.0)


def _kill_one_busy_worker(procs, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first batch worker seen analysing (its title ends in ``.submit``), once."""
    while not stop.is_set() and not killed:
        for pid in _descendants([p.pid for p in procs]):
            title = _title(pid)
            if "MapWorker" in title and ".submit" in title:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                break
        time.sleep(0.2)
