"""Two CPU processes under torchrun (gloo): disjoint per-rank batches, equal steps, exact cross-device gradients."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import polyir

LANGS = ("en", "de", "fr")
TIMEOUT_S = 120

WORKER = textwrap.dedent(
    '''
    import hashlib, json, os, sys
    from pathlib import Path

    import torch
    torch.set_num_threads(1)

    from polyir.training.config import config_from_dict
    from polyir.training.loss import info_nce_loss
    from polyir.training.trainer import train

    out = Path(sys.argv[2])
    rank = int(os.environ["RANK"])
    rows = []
    grad_check = {}


    def cross_device_gradients_are_exact():
        """Per-rank loss with gathered candidates, gradients averaged = one device with the global batch."""
        import torch.distributed as dist

        world = dist.get_world_size()
        g = torch.Generator().manual_seed(0)
        Q, P, N = (torch.randn(n, 8, generator=g) for n in (6, 6, 4))
        lo, hi = rank * 3, rank * 3 + 3
        # rank 0 holds all 4 hard negatives, rank 1 none: the gathers must still line up
        q, p, n = (t.clone().requires_grad_(True) for t in (Q[lo:hi], P[lo:hi], N))
        loss = info_nce_loss(q, p, n if rank == 0 else None, temperature=0.1, symmetric=True, cross_device=True)
        loss.backward()
        Qg, Pg, Ng = (t.clone().requires_grad_(True) for t in (Q, P, N))
        ref = info_nce_loss(Qg, Pg, Ng, temperature=0.1, symmetric=True)
        ref.backward()
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        diffs = [
            (q.grad / world - Qg.grad[lo:hi]).abs().max().item(),
            (p.grad / world - Pg.grad[lo:hi]).abs().max().item(),
            (n.grad / world - Ng.grad).abs().max().item() if rank == 0 else float(n.grad is not None),
            abs(mean_loss.item() / world - ref.item()),
        ]
        return {"max_diff": max(diffs), "ref_grad_scale": Qg.grad.abs().max().item()}


    def on_step(info):
        if info.step == 1:
            grad_check.update(cross_device_gradients_are_exact())
        rows.append({"step": info.step, "loss": info.loss, "world_size": info.world_size,
                     "pair_ids": [pid for b in info.batches for pid in b.pair_ids]})


    config = config_from_dict(json.loads(Path(sys.argv[1]).read_text()))
    result = train(config, on_step=on_step)
    digest = hashlib.sha256()  # of the weights this process ends with
    for name, tensor in sorted(result.encoder.st.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().numpy().tobytes())
    (out / f"rank{rank}.json").write_text(json.dumps({
        "rows": rows, "steps": result.steps, "grad_check": grad_check, "final": result.final_metrics,
        "weights": digest.hexdigest(),
    }))
    '''
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _corpus_and_model(root: Path) -> tuple[Path, Path]:
    from polyir.data.jsonl import write_parallel_jsonl
    from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry
    from polyir.testing import build_tiny_model_dir

    pairs = []
    for i in range(40):
        entries = {
            lang: QAEntry(
                query=f"{lang}who {lang}w{i} e{i} ?",
                positive=f"e{i} {lang}w{i} {lang}is {lang}a{i % 7} .",
                negatives=(f"e{(i + 1) % 40} {lang}w{(i + 1) % 40} {lang}is .",) if i % 3 else (),
            )
            for lang in LANGS
        }
        pairs.append(ParallelPair(f"p{i:02d}", entries))
    corpus = ParallelQACorpus("synth", pairs)
    texts = [t for p in pairs for e in p.entries.values() for t in (e.query, e.positive, *e.negatives)]
    words = sorted({w for t in texts for w in t.split()})
    return build_tiny_model_dir(root / "model", words), write_parallel_jsonl(corpus, root / "synth.jsonl")


def test_two_processes_train_on_disjoint_shards(tmp_path):
    model, data = _corpus_and_model(tmp_path)
    run = tmp_path / "run"
    config = {
        "model": {"spec": str(model), "device": "cpu", "query_max_length": 16, "passage_max_length": 16},
        "data": {"train": [str(data)]},
        "validation": {"fraction": 0.2, "every": 2, "max_loss_batches": 2},
        "optim": {"lr": 3e-3, "max_steps": 4, "batch_size": 4, "hard_negatives": 1, "symmetric_loss": True,
                  "freeze_word_embeddings": False, "precision": "fp32", "cross_device_negatives": True},
        "output_dir": str(run),
        "log_every": 1,
        "checkpoint_every": 2,
        "progress": False,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "worker.py").write_text(WORKER)
    root = str(Path(polyir.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(tmp_path / "worker.py"), str(tmp_path / "config.json"), str(tmp_path),
    ]
    # Own session, so a hang can be ended for torchrun and both workers at once.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        pytest.fail(f"distributed training hung for {TIMEOUT_S}s:\n{stderr[-3000:]}")
    assert proc.returncode == 0, stderr[-4000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    steps = [[row["step"] for row in r["rows"]] for r in ranks]
    assert steps[0] == steps[1] == [1, 2, 3, 4]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 4
    for row0, row1 in zip(ranks[0]["rows"], ranks[1]["rows"]):
        ids0, ids1 = set(row0["pair_ids"]), set(row1["pair_ids"])
        assert len(ids0) == len(ids1) == 4
        assert ids0.isdisjoint(ids1), row0["step"]
        assert row0["loss"] == pytest.approx(row1["loss"])  # the logged loss is the mean over ranks
        assert row0["world_size"] == 2
    # gradients averaged every step: both ranks end with the same weights
    assert ranks[0]["weights"] == ranks[1]["weights"]
    # both ranks know the validation results rank 0 measured
    assert ranks[0]["final"] == ranks[1]["final"] and "val_mul_map" in ranks[0]["final"]
    # cross-device negatives: the update equals one device with the global batch
    for r in ranks:
        assert r["grad_check"]["max_diff"] < 1e-6 < r["grad_check"]["ref_grad_scale"]
    # rank 0 finished the run folder
    assert (run / "last" / "modules.json").is_file() and (run / "best" / "modules.json").is_file()
    info = json.loads((run / "run.json").read_text())
    assert info["world_size"] == 2 and info["steps"] == 4
    assert [s["batches"] for s in info["sampler_stats"]] == [4, 4]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-2", "step-4"]
