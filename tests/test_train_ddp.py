"""Two-process training on CPU (gloo): torchrun runs, resume, and features gathered for negatives."""

from __future__ import annotations

import copy
import gc
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import emoclip
from emoclip.train.engine import train
from emoclip.train.recipe import load_config

pytestmark = pytest.mark.slow

TINY = [
    "model.name=test-emoclip-tiny",
    "model.num_frames=4",
    "data.dataset=synthetic",
    "data.synthetic_clips=16",
    "train.num_workers=0",
    "train.seed=3",
    "log.every=1",
    "log.tensorboard=false",
]


def torchrun(cwd: Path, *args: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "emoclip.train",
        *TINY,
        *args,
    ]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def losses(run: Path) -> dict[int, float]:
    lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in lines if "loss" in r}


def test_torchrun_resume_gather_and_export(tmp_path):
    # 2 processes x batch 4, negatives gathered from both: 2 steps per epoch, 5 steps.
    # 5 evaluation clips on 2 ranks: the authors' DistributedSampler padding scores clip 0 twice
    common = [
        "train.batch_size=4",
        "train.max_steps=5",
        "train.gather_features=true",
        "eval.split=test",
        "data.synthetic_eval_clips=5",
    ]
    torchrun(tmp_path, *common, f"out.dir={tmp_path / 'full'}")
    torchrun(tmp_path, *common, "train.stop_at_step=3", f"out.dir={tmp_path / 'cut'}")  # mid-epoch
    torchrun(tmp_path, *common, "--resume", "auto", f"out.dir={tmp_path / 'cut'}")
    full, cut = losses(tmp_path / "full"), losses(tmp_path / "cut")
    assert sorted(full) == [1, 2, 3, 4, 5] and sorted(cut) == [1, 2, 3, 4, 5]
    assert cut == full  # the resumed steps 4 and 5 equal the uninterrupted run's exactly
    evals = [
        json.loads(x)
        for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()
        if '"eval"' in x
    ]
    assert evals and all(
        e["distributed_padding"] == {"mode": "authors", "world_size": 2, "padded_duplicates": 1}
        and e["num_samples"] == 6
        for e in evals
    )
    state = torch.load(tmp_path / "cut" / "state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["step"] == 5
    a = emoclip.load_model(tmp_path / "full" / "test-emoclip-tiny.safetensors").state_dict()
    b = emoclip.load_model(tmp_path / "cut" / "test-emoclip-tiny.safetensors").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # Gathered negatives make 2 x 4 the same global batch as 1 x 8 (the samplers interleave the same
    # shuffled indices): one process with batch 8 follows the same trajectory.
    single = train(
        load_config(
            None, [*TINY, "train.batch_size=8", "train.max_steps=5", f"out.dir={tmp_path / 'one'}"]
        )
    )
    for step, loss in single.losses:
        assert loss == pytest.approx(full[step], rel=1e-4, abs=1e-5), step


# ---- the gather function, in a 2-process gloo group ------------------------------------------------


class _Towers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.video = torch.nn.Linear(6, 5)
        self.text = torch.nn.Linear(6, 5)
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            F.normalize(self.video(x), dim=-1),
            F.normalize(self.text(y), dim=-1),
            self.logit_scale,
        )


def _gather_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from emoclip.train.loss import contrastive_logits, contrastive_loss

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    towers = _Towers()
    reference = copy.deepcopy(towers)
    x, y = (
        torch.randn(world * 3, 6),
        torch.randn(world * 3, 6),
    )  # the global batch, same on every rank
    local = slice(3 * rank, 3 * rank + 3)
    ddp = DistributedDataParallel(towers)
    logits = contrastive_logits(*ddp(x[local], y[local]), gather=True)
    loss = contrastive_loss(logits)
    loss.backward()
    ref_loss = contrastive_loss(contrastive_logits(*reference(x, y)))  # one process, whole batch
    ref_loss.backward()
    diffs = {
        n: float((p.grad - q.grad).abs().max())
        for (n, p), q in zip(towers.named_parameters(), reference.parameters())
    }
    Path(out, f"{rank}.json").write_text(
        json.dumps(
            {
                "shape": list(logits.shape),
                "loss": float(loss.detach()),
                "ref_loss": float(ref_loss.detach()),
                "diffs": diffs,
            }
        )
    )
    # Leave together, holding nothing of the group: DDP's reducer and the autograd graph keep the
    # gloo process group alive, and a group destroyed by the interpreter's exit rather than by
    # destroy_process_group can abort the process ("terminate called without an active exception",
    # seen once in ~40 CI runs).
    del ddp, logits, loss
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gathered_features_give_global_logits_and_exact_gradients(tmp_path):
    torch.multiprocessing.spawn(_gather_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        r = json.loads((tmp_path / f"{rank}.json").read_text())
        assert r["shape"] == [6, 6]  # local batch 3, logits over the global batch of 6
        assert r["loss"] == pytest.approx(r["ref_loss"], rel=1e-6)
        assert max(r["diffs"].values()) < 1e-6, r["diffs"]  # DDP-averaged grads = whole-batch grads
