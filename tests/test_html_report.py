"""`polyir report`: a made-up experiment built through the real code paths (evaluate_encoder on tiny
models, summarize, write_summary), loose result files, errors, and the page in headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyir.cli import app
from polyir.errors import DataFormatError, PolyirError
from polyir.report import write_report

runner = CliRunner()
LANGS = {"xquad-r": ["en", "de", "es"], "mlqa-r": ["en", "de"]}
LABELS = {ds: f"{ds}[{','.join(langs)}]" for ds, langs in LANGS.items()}
# eval folder -> (tiny model seed, summary row, training seed)
RUNS = {
    "base": (0, "base", None),
    "monolingual-s0": (1, "monolingual", 0),
    "monolingual-s1": (5, "monolingual", 1),
    "crosslingual-s0": (2, "crosslingual", 0),
    "hybrid-a0.25-s0": (3, "hybrid@0.25", 0),
    "hybrid-a0.5-s0": (4, "hybrid@0.5", 0),
}
NAME = 'exp <b>&"x"'
WORDS = "en de es the cat dog sat on mat ran in park who was rome berlin paris madrid river city emperor".split()


class Page(HTMLParser):
    """Tables (class, body rows), images (src, alt), headings and all text of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[dict] = []
        self.headings: list[str] = []
        self.tags: set[str] = set()
        self._stack: list[str] = []
        self._in_body = False
        self._heading: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "table":
            self.tables.append({"class": a.get("class", ""), "rows": 0})
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self.tables:
            self.tables[-1]["rows"] += 1
        elif tag == "img":
            self.images.append(a)
        elif tag in ("h2", "h3", "h4"):
            self._heading = ""

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag in ("h2", "h3", "h4") and self._heading is not None:
            self.headings.append(self._heading)
            self._heading = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data

    def tables_of(self, cls: str) -> list[dict]:
        return [t for t in self.tables if cls in t["class"].split()]


def _evaluate_all(root: Path, tiny_model_dir: Path) -> dict[str, dict[str, Path]]:
    """Evaluate six tiny models on two tiny test sets; return eval folder -> label -> result path."""
    from polyir.data.registry import load_task
    from polyir.evaluation.report import write_outputs
    from polyir.evaluation.run import EvalOptions, evaluate_encoder
    from polyir.models.resolve import load_encoder
    from polyir.testing import build_tiny_model_dir, write_tiny_lareqa

    data = root / "data"
    tasks = {}
    for ds, langs in LANGS.items():
        write_tiny_lareqa(data / ds, langs, n_paragraphs=3)
        tasks[LABELS[ds]] = load_task(ds, data_dir=data, languages=langs)
    out: dict[str, dict[str, Path]] = {}
    for name, (seed, _, _) in RUNS.items():
        model = tiny_model_dir if seed == 0 else build_tiny_model_dir(root / "models" / name, WORDS, seed=seed)
        encoder = load_encoder(str(model), device="cpu")
        for label, task in tasks.items():
            result = evaluate_encoder(encoder, task, EvalOptions(show_progress=False), dataset=label,
                                      extra_config={"row": name})
            path = root / "eval" / name / f"{label}.json"
            write_outputs(result, path)
            out.setdefault(name, {})[label] = path
    return out


GUARD = "mlqa-r[en,de]"  # the guarded experiment reuses this test set's results as a guard set's halves


def _make_experiment(folder: Path, evals: dict[str, dict[str, Path]], alphas: list[float], guarded: bool = False) -> Path:
    """An experiment folder in the real shape: eval/, runs/, experiment.json, summary.json (+ table, charts).

    ``guarded``: with a guard set (eval files ``guard--<label>.json``, ``guard-val--<label>.json``) and a
    WiSE-FT merge row (``eval/merge-w0.5-s0``, row ``hybrid+merge@0.5``), as the runner names them."""
    from polyir.experiment.config import ExperimentConfig
    from polyir.experiment.summary import summarize, write_summary
    from polyir.runinfo import versions, write_json

    config = ExperimentConfig.model_validate({
        "name": NAME, "alphas": alphas, "seeds": [0, 1], "output_dir": str(folder),
        "test_sets": [{"dataset": ds, "languages": langs} for ds, langs in LANGS.items()],
        "evaluation": {"resamples": 200, "precision": "fp32"},
        **({"guard": {"sets": [{"dataset": "mlqa-r", "languages": ["en", "de"]}]}, "merge_weights": [0.5]}
           if guarded else {}),
    })
    write_json(folder / "experiment.json", {"config": config.model_dump(mode="json"), "versions": versions()})
    labels = {label: label for label in LABELS.values()}
    if guarded:
        labels |= {f"guard:{GUARD}": f"guard--{GUARD}", f"guard-val:{GUARD}": f"guard-val--{GUARD}"}
    runs = dict(RUNS)
    if guarded:
        runs["merge-w0.5-s0"] = (3, "hybrid+merge@0.5", 0)
    evaluations: dict[str, dict] = {}
    validation: dict[str, dict] = {}
    for name, (seed, row, train_seed) in runs.items():
        if row.startswith("hybrid@") and float(row.split("@")[1]) not in alphas:
            continue
        source = evals.get(name, evals["hybrid-a0.25-s0"])
        shutil.copytree(source["xquad-r[en,de,es]"].parent, folder / "eval" / name)
        for stem in labels.values():
            if stem.startswith("guard"):
                shutil.copy(source[GUARD], folder / "eval" / name / f"{stem}.json")
        evaluations.setdefault(row, {})[train_seed] = {
            label: folder / "eval" / name / f"{stem}.json" for label, stem in labels.items()
        }
        if row != "base":
            value = 0.5 + 0.1 * seed
            validation.setdefault(row, {})[train_seed] = value
            run_dir = folder / "runs" / name
            run_dir.mkdir(parents=True)
            write_json(run_dir / "run.json", {"seed": train_seed, "steps": 3, "versions": versions(),
                                              "best": {"metric": "val_mul_map", "step": 3, "value": value}})
            (run_dir / "config.yaml").write_text(f"seed: {train_seed}\nnote: <script>alert(1)</script>\n",
                                                 encoding="utf-8")
    summary = summarize(config, evaluations, validation)
    # a row the lead will add (guard sets), with no evaluation files, and a name that needs escaping
    label = LABELS["xquad-r"]
    summary["results"][label]["merged@0.5<&>"] = dict(summary["results"][label]["monolingual"])
    summary["conclusions"].append("a conclusion with <i>markup</i> & ampersands")
    write_summary(summary, folder)
    return folder


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("report")
    evals = _evaluate_all(root, tiny_model_dir)
    sweep = _make_experiment(root / "sweep", evals, [0.25, 0.5])
    single = _make_experiment(root / "single", evals, [0.5])
    guarded = _make_experiment(root / "guarded", evals, [0.5], guarded=True)
    return {"root": root, "evals": evals, "sweep": sweep, "single": single, "guarded": guarded}


def _summary_rows(folder: Path) -> dict[str, int]:
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return {label: len(rows) for label, rows in summary["results"].items()}


def _check_self_contained(html: str, page: Page) -> None:
    assert page.images, "no image at all"
    for img in page.images:
        src = img["src"]
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        assert img.get("alt")
    assert not page.tags & {"script", "link", "iframe"}
    assert "http://" not in html and "https://" not in html


def test_experiment_report_with_alpha_sweep(study, tmp_path):
    out = write_report([study["sweep"]], tmp_path / "r.html")
    html = out.read_text(encoding="utf-8")
    page = Page(html)
    _check_self_contained(html, page)
    # one summary table per test set, one body row per summary row
    rows = _summary_rows(study["sweep"])
    summaries = page.tables_of("summary")
    assert [t["rows"] for t in summaries] == list(rows.values())
    assert set(rows) == set(LABELS.values()) and rows[LABELS["xquad-r"]] == 7
    for label in LABELS.values():
        assert f"Test set {label}" in page.headings
    # every paired test of summary.json is listed
    summary = json.loads((study["sweep"] / "summary.json").read_text(encoding="utf-8"))
    n_tests = sum(len(tests) for table in summary["results"].values() for entry in table.values()
                  for key, tests in entry.items() if key.startswith("vs_"))
    assert sum(t["rows"] for t in page.tables_of("tests")) == n_tests > 0
    # the α curve, because there are two α
    assert "α curve" in page.headings and any(i["alt"] == "alpha curve" for i in page.images)
    assert page.tables_of("alpha")[0]["rows"] == 2
    # heatmaps: each row with files once (hybrid = hybrid@0.5 drawn once), per test set
    heatmaps = [i for i in page.images if i["alt"].startswith("X→Y heatmap")]
    assert len(heatmaps) == 2 * 5
    assert any("hybrid (= hybrid@0.5)" in i["alt"] for i in heatmaps)
    assert len([i for i in page.images if i["alt"].startswith("rank distance bars")]) == 2
    # weakest pairs and language groups for each test set
    assert len(page.tables_of("weakest")) == 2
    assert len(page.tables_of("groups-script")) == 2 and len(page.tables_of("groups-resource")) == 2
    assert page.tables_of("language-groups")[0]["rows"] == 3  # en, de, es
    # configs and versions in collapsible blocks
    assert "<details><summary>experiment.json: config</summary>" in html
    assert "hybrid-a0.25-s0" in html and page.tables_of("versions")[0]["rows"] >= 3
    # escaping: names, conclusions and configs are text, never markup
    assert "exp &lt;b&gt;&amp;&quot;x&quot;" in html and NAME not in html
    assert "merged@0.5&lt;&amp;&gt;" in html and "<&>" not in html
    assert "&lt;i&gt;markup&lt;/i&gt;" in html and "<i>markup" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_single_alpha_has_no_alpha_curve(study, tmp_path):
    html = write_report([study["single"]], tmp_path / "r.html").read_text(encoding="utf-8")
    page = Page(html)
    _check_self_contained(html, page)
    assert "α curve" not in page.headings and not page.tables_of("alpha")
    assert [t["rows"] for t in page.tables_of("summary")] == list(_summary_rows(study["single"]).values())


def test_results_not_yet_in_the_summary_are_shown(study, tmp_path):
    """An α sweep still running: eval/hybrid-a0.25-s0 exists, summary.json does not list it yet."""
    folder = tmp_path / "running"
    shutil.copytree(study["single"], folder)
    shutil.copytree(study["evals"]["hybrid-a0.25-s0"][LABELS["xquad-r"]].parent, folder / "eval" / "hybrid-a0.25-s0")
    html = write_report([folder], tmp_path / "r.html").read_text(encoding="utf-8")
    page = Page(html)
    expected = [n + 1 for n in _summary_rows(folder).values()]
    assert [t["rows"] for t in page.tables_of("summary")] == expected
    assert any(i["alt"] == "X→Y heatmap of hybrid@0.25 on xquad-r[en,de,es]" for i in page.images)


def test_guard_sets_merges_and_selection(study, tmp_path):
    html = write_report([study["guarded"]], tmp_path / "r.html").read_text(encoding="utf-8")
    page = Page(html)
    _check_self_contained(html, page)
    summary = json.loads((study["guarded"] / "summary.json").read_text(encoding="utf-8"))
    assert f"guard:{GUARD}" in summary["results"]
    # the guard set's test half is a test set of its own; its validation half is never shown
    assert [t["rows"] for t in page.tables_of("summary")] == list(_summary_rows(study["guarded"]).values())
    assert f"Test set guard:{GUARD} (guard set, test half)" in page.headings
    assert "guard-val" not in " ".join(page.headings)
    # the merge row finds its files (eval/merge-w0.5-s0) on every test set, the guard's included
    merge_maps = [i for i in page.images if i["alt"].startswith("X→Y heatmap of hybrid+merge@0.5")]
    assert len(merge_maps) == 3
    assert "Guard sets and selection" in page.headings
    assert page.tables_of("selection")[0]["rows"] == len(summary["selection"]["candidates"]) == 2
    assert "top-1 → non-en" in html  # the guard metrics' labels come from the experiment table


def test_summary_only_folder(study, tmp_path):
    """As docs/results/<experiment> holds it in a clean clone: summary.json and experiment.json only."""
    folder = tmp_path / "results"
    folder.mkdir()
    for name in ("summary.json", "experiment.json"):
        shutil.copy(study["single"] / name, folder / name)
    html = write_report([folder], tmp_path / "r.html").read_text(encoding="utf-8")
    page = Page(html)
    _check_self_contained(html, page)
    assert [t["rows"] for t in page.tables_of("summary")] == list(_summary_rows(folder).values())
    assert "holds no <code>eval/" in html
    assert not [i for i in page.images if i["alt"].startswith("X→Y heatmap")] and not page.tables_of("weakest")


def test_loose_results_and_old_files_without_pairs(study, tmp_path):
    evals = study["evals"]
    label = LABELS["xquad-r"]
    files = []
    for name in ("base", "hybrid-a0.5-s0", "crosslingual-s0"):
        data = json.loads(evals[name][label].read_text(encoding="utf-8"))
        if name == "crosslingual-s0":
            del data["pairs"]  # written before the pairs section existed
        path = tmp_path / "loose" / f"{name}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(data), encoding="utf-8")
        files.append(path)
    html = write_report(files, tmp_path / "r.html", resamples=200).read_text(encoding="utf-8")
    page = Page(html)
    _check_self_contained(html, page)
    assert "Evaluation results" in page.headings
    assert page.tables_of("summary")[0]["rows"] == 3
    # rows are tested against the first file: 6 metrics x 2 rows
    assert page.tables_of("tests")[0]["rows"] == 12
    assert len([i for i in page.images if i["alt"].startswith("X→Y heatmap")]) == 3
    assert "crosslingual-s0" in html and page.tables_of("weakest")[0]["rows"] > 0
    # a folder of results works too, and mixes with an experiment folder
    page2 = Page(write_report([tmp_path / "loose", study["single"]], tmp_path / "r2.html",
                              resamples=200).read_text(encoding="utf-8"))
    assert len(page2.tables_of("summary")) == 3


def _miracl_like(path: Path, shift: float) -> Path:
    """A result in the shape `polyir evaluate --dataset miracl` writes (no matrix: nDCG@10, Recall@100)."""
    import numpy as np

    rng = np.random.default_rng(int(shift * 100))
    langs = ["sw", "te", "yo"]
    pq = {"query_id": [], "query_lang": [], "ndcg@10": [], "recall@100": []}
    for lang in langs:
        for i in range(20):
            pq["query_id"].append(f"{lang}:{i}")
            pq["query_lang"].append(lang)
            pq["ndcg@10"].append(float(np.clip(0.4 + shift + rng.normal(0, 0.1), 0, 1)))
            pq["recall@100"].append(float(np.clip(0.7 + shift + rng.normal(0, 0.1), 0, 1)))
    per_language = {lang: {m: float(np.mean([v for v, q in zip(pq[m], pq["query_lang"]) if q == lang]))
                           for m in ("ndcg@10", "recall@100")} | {"queries": 20, "passages": 1000} for lang in langs}
    data = {"format": "polyir.miracl/1", "task": "miracl-dev", "dataset": "miracl", "model": path.stem,
            "config": {"languages": langs}, "versions": {"polyir": "0.1.0"},
            "metrics": {m: float(np.mean([per_language[x][m] for x in langs])) for m in ("ndcg@10", "recall@100")},
            "per_language": per_language, "per_query": pq}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_results_without_a_matrix_still_report(tmp_path):
    files = [_miracl_like(tmp_path / "base.json", 0.0), _miracl_like(tmp_path / "tuned.json", 0.1)]
    html = write_report(files, tmp_path / "r.html", resamples=200).read_text(encoding="utf-8")
    page = Page(html)
    _check_self_contained(html, page)
    assert page.tables_of("summary")[0]["rows"] == 2 and "Test set miracl" in page.headings
    assert page.tables_of("tests")[0]["rows"] == 2  # nDCG@10 and Recall@100 against the first file
    # +0.1 on 60 queries is significant; the reference file is named base, so the mark reads B+
    assert html.count('class="mark better"') == 2 and ">B+**</span>" in html
    assert {i["alt"] for i in page.images} == {"ndcg@10 bars on miracl", "recall@100 bars on miracl"}
    groups = page.tables_of("groups-resource")[0]
    assert groups["rows"] == 2  # low (sw, te, yo) x nDCG@10, Recall@100
    assert not page.tables_of("weakest")


def test_rebuilt_pairs_flag_the_same_pairs(study, tmp_path):
    from polyir.evaluation.pairs import pairs_of_result

    data = json.loads(study["evals"]["base"][LABELS["xquad-r"]].read_text(encoding="utf-8"))
    written = data.pop("pairs")
    assert pairs_of_result(data)["weakest_pairs"] == written["weakest_pairs"]


def test_errors_are_clear(study, tmp_path):
    with pytest.raises(PolyirError, match="no such file or folder"):
        write_report([tmp_path / "missing"], tmp_path / "r.html")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.json").write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(PolyirError, match="holds no summary.json and no polyir result JSON"):
        write_report([empty], tmp_path / "r.html")
    with pytest.raises(DataFormatError, match="not a polyir evaluation result"):
        write_report([empty / "sub" / "notes.json"], tmp_path / "r.html")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops", encoding="utf-8")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        write_report([bad], tmp_path / "r.html")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text('{"name": "x"}', encoding="utf-8")
    with pytest.raises(DataFormatError, match="not a polyir experiment summary"):
        write_report([broken], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_cli_report_with_a_groups_file(study, tmp_path):
    groups = tmp_path / "groups.csv"
    groups.write_text("code,name,family\nen,English,Germanic\nde,German,Germanic\nes,Spanish,Romance\n",
                      encoding="utf-8")
    out = tmp_path / "site" / "report.html"
    res = runner.invoke(app, ["report", str(study["single"]), "--output", str(out), "--groups", str(groups)])
    assert res.exit_code == 0, res.output
    assert f"wrote {out}" in res.output.replace("\n", "")
    page = Page(out.read_text(encoding="utf-8"))
    assert len(page.tables_of("groups-family")) == 2 and not page.tables_of("groups-script")
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,resource\nen,English,plenty\n", encoding="utf-8")
    res = runner.invoke(app, ["report", str(study["single"]), "--output", str(out), "--groups", str(bad)])
    assert res.exit_code == 2 and "resource must be one of high, mid, low" in res.output
    res = runner.invoke(app, ["report", str(tmp_path / "nothing"), "--output", str(out)])
    assert res.exit_code == 2 and "no such file or folder" in res.output


# ---------------------------------------------------------------------------------------------
# the page in a real headless Chromium

# Skip only when Chromium is absent; installed but not drivable fails (CI must not skip silently).
CHROMIUM = Path(os.environ.get("POLYIR_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("POLYIR_CHROMEDRIVER", "/usr/bin/chromedriver"))
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
PROBE = """(() => ({
  summaryRows: Array.from(document.querySelectorAll('table.summary')).map(t => t.tBodies[0].rows.length),
  renderedTables: Array.from(document.querySelectorAll('table.summary')).filter(t => t.getBoundingClientRect().height > 20).length,
  images: Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
  title: document.title,
}))()"""


def _render(html_path: Path, png_path: Path) -> dict:
    """Open the page, take a full-page screenshot, return what PROBE reads (Playwright, else Selenium)."""
    reasons = []
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS[1:])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(html_path.resolve().as_uri(), wait_until="load")
                page.screenshot(path=str(png_path), full_page=True)
                return page.evaluate(PROBE)
            finally:
                browser.close()
    except ImportError as exc:
        reasons.append(f"playwright: not installed ({exc.name})")
    except Exception as exc:  # noqa: BLE001 - try Selenium next
        reasons.append(f"playwright: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for a in ARGS:
            options.add_argument(a)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    except Exception as exc:  # noqa: BLE001
        reasons.append(f"selenium: {type(exc).__name__}: {str(exc).strip()[:120]}")
        pytest.fail(f"{CHROMIUM} is installed but no driver could start it: " + "; ".join(reasons), pytrace=False)
    try:
        driver.set_window_size(1280, 900)
        driver.get(html_path.resolve().as_uri())
        info = driver.execute_script(f"return {PROBE};")
        driver.save_screenshot(str(png_path))
        return info
    finally:
        driver.quit()


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium chromium-driver)")
@pytest.mark.timeout(180)
def test_page_renders_in_headless_chromium(study, tmp_path):
    html = write_report([study["sweep"]], tmp_path / "report.html")
    png = tmp_path / "report.png"
    info = _render(html, png)
    assert info["title"].startswith("polyir report: exp <b>")  # the title is text, shown as typed
    assert info["summaryRows"] == list(_summary_rows(study["sweep"]).values())
    assert info["renderedTables"] == len(LABELS)
    assert len(info["images"]) >= 2 * 5 + 2 * 2 + 1
    for complete, width, height in info["images"]:
        assert complete and width > 0 and height > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
