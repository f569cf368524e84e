"""Two CPU processes under torchrun (gloo), through the trainer itself.

One torchrun launch (process start-up and imports dominate: ~20 s on 2 busy cores; the training
itself is a few tenths of a second per scenario) runs every 2-rank scenario; the tests compare them
with 1-process runs of the same global batch made here:

- a 2-rank step equals a 1-process step over the same global batch (losses and weights within float
  tolerance), which needs cross-device negatives: without the gather each query sees only its own
  rank's passages and the loss differs (checked too, so the comparison can tell the two apart);
- a 2-rank run killed between checkpoints and resumed equals the uninterrupted run bit for bit;
- per-rank shards are disjoint, every rank takes the same steps, rank 0 writes the run folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import polyir

LANGS = ("en", "de", "fr")
TIMEOUT_S = 900  # a hang guard only (the launch takes ~20-30 s), not a timed assertion
STEPS = 4
CACHED = {"grad_cache": True, "grad_cache_chunk_size": 3, "grad_accumulation": 2}

WORKER = textwrap.dedent(
    '''
    import hashlib, json, os, sys
    from pathlib import Path

    import torch
    torch.set_num_threads(1)
    import torch.distributed as dist

    from polyir.training.config import config_from_dict
    from polyir.training.loss import info_nce_loss
    from polyir.training.trainer import train

    scenarios = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    rank = int(os.environ["RANK"])
    (out / f"pid{rank}").write_text(str(os.getpid()))  # so the test can end a hung worker


    class Crash(Exception):
        pass


    def cross_device_gradients_are_exact():
        """Per-rank loss with gathered candidates, gradients averaged = one device with the global batch."""
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


    def digest(encoder):
        h = hashlib.sha256()  # of the exact bytes of this process' weights
        for name, tensor in sorted(encoder.st.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


    def run(raw, crash_at=None):
        rows, extra = [], {}

        def on_step(info):
            if info.step == 1 and not extra:
                extra.update(cross_device_gradients_are_exact())
            rows.append({"step": info.step, "loss": info.loss, "world_size": info.world_size,
                         "pair_ids": [pid for b in info.batches for pid in b.pair_ids]})
            if crash_at is not None and info.step == crash_at:
                raise Crash()

        try:
            result = train(config_from_dict(raw), on_step=on_step)
        except Crash:
            return {"rows": rows, "crashed": True}
        return {"rows": rows, "steps": result.steps, "final": result.final_metrics, "grad_check": extra,
                "weights": digest(result.encoder), "losses": result.losses,
                "resumed_from": str(result.resumed_from) if result.resumed_from else None}


    report = {}
    for sc in scenarios:  # the first train() creates the process group, the others reuse it
        report[sc["name"]] = run(sc["config"], sc.get("crash_at"))
        if sc.get("resume"):
            report[sc["name"] + "+resumed"] = run({**sc["config"], "resume_from": "latest"})
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    '''
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _corpus(root: Path) -> tuple[list[str], Path]:
    from polyir.data.jsonl import write_parallel_jsonl
    from polyir.data.types import ParallelPair, ParallelQACorpus, QAEntry

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
    return sorted({w for t in texts for w in t.split()}), write_parallel_jsonl(corpus, root / "synth.jsonl")


def _config(model: Path, data: Path, out: Path, *, batch_size: int, **optim) -> dict:
    return {
        "model": {"spec": str(model), "device": "cpu", "query_max_length": 16, "passage_max_length": 16},
        "data": {"train": [str(data)]},
        "validation": {"fraction": 0.2, "every": 2, "max_loss_batches": 2},
        "optim": {"lr": 3e-3, "max_steps": STEPS, "batch_size": batch_size, "hard_negatives": 1,
                  "symmetric_loss": True, "freeze_word_embeddings": False, "precision": "fp32",
                  "cross_device_negatives": True, "warmup_ratio": 0.0, **optim},
        "output_dir": str(out),
        "log_every": 1,
        "checkpoint_every": 2,
        "progress": False,
    }


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def launch(tmp_path_factory):
    """Run every 2-rank scenario in one torchrun launch; the per-rank reports and the folders."""
    from polyir.testing import build_tiny_model_dir

    root = tmp_path_factory.mktemp("dist")
    words, data = _corpus(root)
    # No dropout: a step is then a function of the batch alone, so 2 ranks can equal 1 process.
    exact = build_tiny_model_dir(root / "model-nodrop", words, dropout=0.0)
    noisy = build_tiny_model_dir(root / "model", words)  # dropout 0.1: resume must replay each rank's RNG
    scenarios = [
        # length groups at no overhead: the passage tower (positives of 7 tokens, negatives of 6) runs as two
        # forwards through DDP before one backward; the 1-process reference forwards it whole
        {"name": "cross", "config": _config(exact, data, root / "cross", batch_size=4, length_group_overhead=0)},
        {"name": "local", "config": _config(exact, data, root / "local", batch_size=4, max_steps=1,
                                            cross_device_negatives=False)},
        {"name": "straight", "config": _config(noisy, data, root / "straight", batch_size=4, max_steps=5,
                                               grad_accumulation=2)},
        # GradCache (2 chunks per tower and rank) and 2 micro-batches a step: every backward but the step's
        # last accumulates under DDP's no_sync, the last one all-reduces
        {"name": "cached", "config": _config(exact, data, root / "cached", batch_size=4, max_steps=3, **CACHED)},
        # killed at step 3, between the checkpoints of steps 2 and 4, then resumed with --resume latest
        {"name": "killed", "config": _config(noisy, data, root / "killed", batch_size=4, max_steps=5,
                                             grad_accumulation=2), "crash_at": 3, "resume": True},
    ]
    (root / "scenarios.json").write_text(json.dumps(scenarios))
    (root / "worker.py").write_text(WORKER)
    src = str(Path(polyir.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(root / "worker.py"), str(root / "scenarios.json"), str(root),
    ]
    # Own session, so a hang can be ended for torchrun and both workers at once.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        for f in root.glob("pid*"):  # workers outlive a torchrun that was killed
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(f.read_text()), signal.SIGKILL)
        _, stderr = proc.communicate()
        pytest.fail(f"distributed training hung for {TIMEOUT_S}s:\n{stderr[-3000:]}")
    assert proc.returncode == 0, stderr[-4000:]
    ranks = [json.loads((root / f"rank{r}.json").read_text()) for r in (0, 1)]
    return {"root": root, "ranks": ranks, "exact": exact, "data": data}


def _one_process(launch, name: str, **optim):
    """The same run in this process (world size 1) with the global batch (2 x 4) on one device."""
    from polyir.training.config import config_from_dict
    from polyir.training.trainer import train

    rows: list[dict] = []

    def on_step(info) -> None:
        rows.append({"step": info.step, "loss": info.loss, "pair_ids": [p for b in info.batches for p in b.pair_ids]})

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        raw = _config(launch["exact"], launch["data"], launch["root"] / name, batch_size=8, **optim)
        result = train(config_from_dict(raw), on_step=on_step)
    finally:
        torch.set_num_threads(threads)
    return result, rows


def test_two_ranks_equal_one_process_over_the_global_batch(launch):
    r0, r1 = (r["cross"] for r in launch["ranks"])
    single, rows = _one_process(launch, "single")
    # the same global batches: rank 0's slice then rank 1's = the 1-process batch
    assert [a["pair_ids"] + b["pair_ids"] for a, b in zip(r0["rows"], r1["rows"])] == [r["pair_ids"] for r in rows]
    # the same loss at every step (the 2-rank figure is the mean over ranks)
    for a, b, ref in zip(r0["rows"], r1["rows"], rows):
        assert a["loss"] == b["loss"]
        assert a["loss"] == pytest.approx(ref["loss"], rel=1e-5, abs=1e-6), a["step"]
    # the same weights after STEPS updates, within float tolerance (summation order differs)
    w2, w1 = _weights(launch["root"] / "cross" / "last"), _weights(single.last_dir)
    assert w2.keys() == w1.keys()
    moved = 0
    for name in w1:
        assert torch.allclose(w2[name], w1[name], rtol=1e-4, atol=1e-5), name
        moved += not torch.allclose(w1[name], _weights(launch["root"] / "cross" / "checkpoints" / "step-2" / "model")[name])
    assert moved > len(w1) // 2  # training moved the weights between step 2 and the end
    # validation (measured by rank 0 with those weights) agrees, and both ranks report it
    assert r0["final"] == r1["final"]
    assert r0["final"]["val_loss"] == pytest.approx(single.final_metrics["val_loss"], rel=1e-5)
    assert r0["final"]["val_mul_map"] == pytest.approx(single.final_metrics["val_mul_map"], abs=1e-6)


def test_gradcache_and_accumulation_under_ddp_equal_one_process(launch):
    """DDP with GradCache chunks and gradient accumulation: the 2-rank run still equals one process
    over the same global batches (cross-device negatives included), weights within float tolerance."""
    r0, r1 = (r["cached"] for r in launch["ranks"])
    single, rows = _one_process(launch, "single-cached", max_steps=3, **CACHED)
    assert [sorted(a["pair_ids"] + b["pair_ids"]) for a, b in zip(r0["rows"], r1["rows"])] == [
        sorted(r["pair_ids"]) for r in rows
    ]
    for a, b, ref in zip(r0["rows"], r1["rows"], rows):
        assert a["loss"] == b["loss"]
        assert a["loss"] == pytest.approx(ref["loss"], rel=1e-5, abs=1e-6), a["step"]
    assert r0["weights"] == r1["weights"]  # every rank applied the same averaged gradient
    run = launch["root"] / "cached"
    w2, w1 = _weights(run / "last"), _weights(single.last_dir)
    assert w2.keys() == w1.keys()
    for name in w1:
        assert torch.allclose(w2[name], w1[name], rtol=1e-4, atol=1e-5), name
    before = _weights(run / "checkpoints" / "step-2" / "model")
    assert sum(not torch.allclose(w2[n], before[n]) for n in w2) > len(w2) // 2  # step 3 moved the weights


def test_without_cross_device_negatives_the_step_differs(launch):
    """The control: each rank scoring only its own 4 passages is not the 8-pair step (so the test
    above can tell whether the trainer gathers the other rank's embeddings)."""
    local = launch["ranks"][0]["local"]["rows"][0]["loss"]
    _, rows = _one_process(launch, "single-1", max_steps=1)
    assert abs(local - rows[0]["loss"]) > 1e-2  # fewer negatives: a clearly lower loss
    assert local < rows[0]["loss"]


def test_shards_steps_and_run_folder(launch):
    ranks = [r["cross"] for r in launch["ranks"]]
    run = launch["root"] / "cross"
    assert [[row["step"] for row in r["rows"]] for r in ranks] == [list(range(1, STEPS + 1))] * 2
    assert ranks[0]["steps"] == ranks[1]["steps"] == STEPS
    for row0, row1 in zip(ranks[0]["rows"], ranks[1]["rows"]):
        ids0, ids1 = set(row0["pair_ids"]), set(row1["pair_ids"])
        assert len(ids0) == len(ids1) == 4
        assert ids0.isdisjoint(ids1), row0["step"]
        assert row0["world_size"] == 2
    assert ranks[0]["weights"] == ranks[1]["weights"]  # gradients averaged every step
    # the loss function itself: per-rank loss with gathered candidates = one device, gradient for gradient
    for r in ranks:
        assert r["grad_check"]["max_diff"] < 1e-6 < r["grad_check"]["ref_grad_scale"]
    assert (run / "last" / "modules.json").is_file() and (run / "best" / "modules.json").is_file()
    info = json.loads((run / "run.json").read_text())
    assert info["world_size"] == 2 and info["steps"] == STEPS
    assert [s["batches"] for s in info["sampler_stats"]] == [STEPS, STEPS]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-2", "step-4"]


def test_two_rank_resume_between_checkpoints_is_bit_identical(launch):
    """Killed at step 3 (last checkpoint: step 2), resumed to step 5: the uninterrupted run's weights on
    both ranks, byte for byte, with dropout on and 2 micro-batches per step."""
    for r in launch["ranks"]:
        straight, killed, resumed = r["straight"], r["killed"], r["killed+resumed"]
        assert killed["crashed"] and [x["step"] for x in killed["rows"]] == [1, 2, 3]
        assert resumed["resumed_from"].endswith("step-2")
        assert [x["step"] for x in resumed["rows"]] == [3, 4, 5]
        assert [x["pair_ids"] for x in resumed["rows"]] == [x["pair_ids"] for x in straight["rows"][2:]]
        assert resumed["losses"] == straight["losses"][2:]  # exactly
        assert resumed["weights"] == straight["weights"]
    assert launch["ranks"][0]["straight"]["weights"] == launch["ranks"][1]["straight"]["weights"]
    root = launch["root"]
    wa, wb = _weights(root / "straight" / "last"), _weights(root / "killed" / "last")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    rows = [json.loads(x) for x in (root / "killed" / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows if x["type"] == "train"] == [1, 2, 3, 4, 5]
