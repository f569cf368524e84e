"""``polyir evaluate --dataset miracl``: the MIRACL branch of the evaluate command."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from polyir.errors import PolyirError


def is_miracl(dataset: str) -> bool:
    """True when ``dataset`` names a registered dataset of kind ``miracl``."""
    from polyir.data.registry import REGISTRY

    spec = REGISTRY.get(dataset)
    return spec is not None and spec.kind == "miracl"


def evaluate_miracl_command(
    *,
    model: str,
    languages: str | None,
    output: Path | None,
    data_dir: Path | None,
    corpus: Path | None,
    precision: str,
    batch_size: int,
    device: str,
    cache: bool,
    query_max_length: int | None,
    passage_max_length: int | None,
    progress: bool,
) -> dict:
    """Evaluate a model on MIRACL dev; print the table; write the JSON (+ TREC runs) if asked."""
    from polyir.atomic import OutputError, check_output_path
    from polyir.evaluation.miracl import MiraclOptions, evaluate_miracl, print_miracl_summary
    from polyir.languages import parse_languages
    from polyir.models.resolve import load_encoder
    from polyir.runinfo import write_json

    if precision not in ("fp32", "bf16", "fp16", "int8"):
        raise PolyirError(f"--precision must be fp32, bf16, fp16 or int8, not {precision!r}")
    runs_dir = output.with_name(output.stem + ".runs") if output is not None else None
    if output is not None and runs_dir is not None:  # before any work: the JSON and the runs folder beside it
        check_output_path(output, what="--output")
        if runs_dir.exists() and not runs_dir.is_dir():
            raise OutputError(f"output {runs_dir} (the TREC runs folder) is a file; move it or pick another --output")
    langs = parse_languages(languages)
    encoder = load_encoder(
        model, device=device, query_max_length=query_max_length, passage_max_length=passage_max_length
    )
    options = MiraclOptions(precision=precision, batch_size=batch_size, use_cache=cache,  # type: ignore[arg-type]
                            show_progress=progress)
    try:
        result = evaluate_miracl(encoder, langs, data_dir=data_dir, corpus_dir=corpus,
                                 options=options, runs_dir=runs_dir)
    except ValueError as exc:
        raise PolyirError(str(exc)) from exc
    print_miracl_summary(result, Console())
    if output is not None:
        write_json(output, result)
        Console().print(f"wrote {output} and TREC runs in {runs_dir}/", highlight=False)
    return result
