"""``specdecode report``: a run directory built from real (small) artefacts — synthetic traces,
compare rows scored by the real metrics and summarised by the real ``summarise``, a real
``speculate replay`` with the table predictors and stub model predictors — rendered to
Markdown and one self-contained HTML page, which headless Chromium must show without a single
network request."""

from __future__ import annotations

import http.server
import json
import shutil
import socketserver
import subprocess
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from conftest import run_cli
from specdecode.data.synth import synthesize
from specdecode.evaluate.metrics import BINARY, example_metrics, failure_modes, paired
from specdecode.evaluate.run import summarise
from specdecode.jsonl import write_json, write_jsonl
from specdecode.records import ToolCall
from specdecode.registry import load_registry
from specdecode.report import write_report
from specdecode.speculate.predictors.base import Prediction, Predictor
from specdecode.speculate.replay import ReplaySettings, replay
from specdecode.speculate.run import build_predictors, fit
from specdecode.speculate.simulate import LatencyModel

PREDICTORS = ("frequency", "pattern", "base", "lora", "hybrid")
FIGURES = (
    "loss_curves",
    "headline_metrics",
    "hits_by_group_first_call_exact",
    "hits_by_group_first_call_name",
    "confusion_first_tool",
    "failure_modes",
    "predictor_hits",
    "spec_by_group",
    "spec_by_step",
    "timeline",
    "speedup_sweep",
    "wasted_calls",
    "speculator_latency",
)


class StubModel(Predictor):
    """A stand-in for a model predictor: right on every ``every``-th step (else a wrong guess),
    with a model-like latency and batch-1 timings for latency.json."""

    def __init__(self, name: str, gold: dict[tuple[str, int], ToolCall], every: int, latency: float):
        self.name, self.gold, self.every, self.latency = name, gold, every, latency

    def predict_many(self, contexts, k=1):
        out = []
        for c in contexts:
            gold = self.gold[(c.id, c.step)]
            wrong = ToolCall(tool_name="search", arguments={"query": f"guess {c.step}"})
            calls = [gold, wrong] if (c.step + len(c.id)) % self.every == 0 else [wrong, gold]
            out.append(Prediction(calls[:k], self.latency * (1 + 0.1 * (c.step % 3))))
        return out

    def measure_latency(self, sample, cached_prefix=True):
        return [self.latency * (0.5 if cached_prefix else 1.0) * (1 + 0.05 * i) for i in range(len(sample))]

    def describe(self):
        return {"name": self.name, "every": self.every, "latency": self.latency}


def _compare_rows(traces) -> list[dict]:
    """Next-call rows of a comparison: the base model mostly answers with no call, the adapter
    gets most tools and some arguments right (scored by the real metrics)."""
    rows = []
    for t in traces:
        for k, step in enumerate(t.trace):
            gold = [step.action]
            i = len(rows)
            base = [] if i % 4 else [ToolCall(tool_name="search", arguments={"query": "x"})]
            if i % 3 == 0:
                lora = [step.action]
            elif i % 3 == 1:
                lora = [ToolCall(tool_name=step.action.tool_name, arguments={"other": i})]
            else:
                lora = [ToolCall(tool_name="calculator", arguments={"expression": "1+1"})]
            row = {
                "id": f"{t.id}#step{k}",
                "level": t.level,
                "step": k,
                "gold_calls": [c.model_dump() for c in gold],
                "gold_tool": gold[0].tool_name,
                "winner": "lora",
            }
            for side, pred in (("base", base), ("lora", lora)):
                row[f"{side}_pred"] = "The answer is 42." if not pred else json.dumps(pred[0].model_dump())
                row[f"{side}_pred_calls"] = [c.model_dump() for c in pred]
                row[f"{side}_metrics"] = example_metrics(gold, pred, bool(pred))
                row[f"{side}_unknown_tools"] = []
                row[f"{side}_parse_format"] = "json" if pred else "none"
                row[f"{side}_latency"] = 0.5 + 0.01 * i
                row[f"{side}_completion_tokens"] = 20
                row[f"{side}_batch_size"] = 8
            rows.append(row)
    return rows


def _write_compare(path: Path, rows: list[dict]) -> None:
    write_jsonl(path, rows)
    tests = {
        m: paired([bool(r["base_metrics"][m]) for r in rows], [bool(r["lora_metrics"][m]) for r in rows])
        for m in BINARY
        if m not in ("loop", "over_action")
    }
    write_json(
        path.with_suffix(".summary.json"),
        {
            "n": len(rows),
            "mode": "next-call",
            "backend": "hf",
            "judge": "deterministic",
            "base": summarise(rows, "next-call", "base_"),
            "lora": summarise(rows, "next-call", "lora_"),
            "paired": tests,
            "winners": {"lora": len(rows)},
            "fingerprint": {
                "command": "compare",
                "judge": "deterministic",
                "base_model": "smollm2-135m",
                "seed": 0,
            },
        },
    )


def _write_training(adapter: Path) -> None:
    adapter.mkdir(parents=True)
    write_json(
        adapter / "training_curves.json",
        {
            "train": [
                {"step": s, "loss": 1.0 / s, "learning_rate": 1e-3 * (1 - s / 12)} for s in (1, 4, 8, 12)
            ],
            "validation": [{"step": s, "loss": 0.9 / s, "perplexity": 2.0} for s in (4, 8, 12, 12)],
        },
    )
    write_json(
        adapter / "training_summary.json",
        {
            "global_step": 12,
            "initial_eval_loss": 0.98,
            "best_eval_loss": 0.08,
            "final_eval_loss": 0.08,
            "final_eval_perplexity": 1.08,
            "train_examples": 40,
            "val_examples": 8,
            "data": [{"path": "traces/train.jsonl", "examples": 40}],
            "world_size": 1,
            "device": "cpu",
            "seconds": 12.5,
        },
    )
    (adapter / "train_config.yaml").write_text(
        yaml.safe_dump(
            {
                "train_file": "traces/train.jsonl",
                "model_name": "smollm2-135m",
                "registry": "tools4",
                "lora_r": 16,
                "lora_alpha": 32,
                "form": "steps",
                "seed": 0,
            }
        ),
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run")
    traces = synthesize(24, seed=0, registry="tools4")
    train, test = traces[:16], traces[16:]
    write_jsonl(root / "traces" / "train.jsonl", train)
    write_jsonl(root / "traces" / "test.jsonl", test)
    _write_training(root / "adapter")
    _write_compare(root / "compare.jsonl", _compare_rows(test))
    registry = load_registry("tools4")
    fit(train, root / "predictors")
    predictors: dict[str, Predictor] = build_predictors(["frequency", "pattern"], root / "predictors")
    gold = {(t.id, k): s.action for t in test for k, s in enumerate(t.trace)}
    predictors["base"] = StubModel("base", gold, every=5, latency=0.6)
    predictors["lora"] = StubModel("lora", gold, every=2, latency=0.4)
    predictors["hybrid"] = StubModel("hybrid", gold, every=3, latency=0.45)
    settings = ReplaySettings(
        k=3, latency=LatencyModel.from_specs("uniform:1,3", "lognormal:0,0.5"), latency_samples=4
    )
    replay(test, registry, predictors, root / "speculate", settings)
    return root


def _section_titles(md: str) -> list[str]:
    return [line[3:].strip() for line in md.splitlines() if line.startswith("## ")]


def test_report_has_every_section_figure_and_predictor(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    md_path, html_path = write_report(run_dir, out, title="Fixture run")
    assert (md_path, html_path) == (out / "report.md", out / "report.html")
    md = md_path.read_text(encoding="utf-8")
    assert md.startswith("# Fixture run\n")
    assert _section_titles(md) == ["At a glance", "Training", "Base model vs adapter", "Speculation", "Setup"]
    for heading in (
        "### Failure modes",
        "### Example steps",
        "### First-tool confusion",
        "### Simulated time",
        "### Data files",
        "### Software and machine",
    ):
        assert heading in md, heading
    # every predictor in the comparison table, by name
    for name in PREDICTORS:
        assert f"| **{name}** |" in md, name
    # the headline numbers are the summaries' own
    summary = json.loads((run_dir / "compare.summary.json").read_text())
    exact = summary["lora"]["metrics"]["first_call_exact"]["mean"]
    assert f"Next-call accuracy: {100 * exact:.1f} %" in md
    spec = json.loads((run_dir / "speculate" / "summary.json").read_text())
    best = max(PREDICTORS, key=lambda n: (spec[n]["hit_at_1"], PREDICTORS.index(n)))
    assert f"Best predictor hit@1: {100 * spec[best]['hit_at_1']:.1f} %" in md
    fastest = max(PREDICTORS, key=lambda n: (spec[n]["speedup"], spec[n]["hit_at_1"]))
    assert f"Simulated speed-up: {spec[fastest]['speedup']:.2f}×" in md
    # failure modes as counted by evaluate.metrics
    rows = [json.loads(line) for line in (run_dir / "compare.jsonl").read_text().splitlines()]
    counts = failure_modes(rows, "lora_")
    assert f"| wrong arguments | {failure_modes(rows, 'base_')['wrong_arguments']} (" in md
    assert f"({100 * counts['wrong_arguments'] / counts['examples']:.0f} %) |" in md
    # data files with their hashes; package versions
    assert "traces/train.jsonl" in md and "SHA-256" in md
    assert "matplotlib `" in md and "python `" in md
    # every figure as PNG and SVG, linked from the Markdown, embedded in the HTML
    html = html_path.read_text(encoding="utf-8")
    for name in FIGURES:
        png, svg = out / "figures" / f"{name}.png", out / "figures" / f"{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert png.stat().st_size > 8000, name
        assert b"<svg" in svg.read_bytes()[:2000], name
        assert f"](figures/{name}.png)" in md, name
        assert f'id="fig-{name}"' in html, name
    assert html.count('src="data:image/png;base64,') == len(list((out / "figures").glob("*.png")))
    assert "<script" not in html and "@import" not in html and "url(" not in html
    assert not any(a.startswith(("http:", "https:", "//")) for a in _attributes(html, ("src", "href"))), (
        "external"
    )
    assert not (run_dir / "report.html").exists()  # --out respected


def _attributes(html: str, names: tuple[str, ...]) -> list[str]:
    from html.parser import HTMLParser

    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend((value or "").strip() for key, value in attrs if key in names)

    Parser().feed(html)
    return found


def test_partial_and_damaged_run_dirs(run_dir: Path, tmp_path: Path) -> None:
    # speculation only, with sections of the summary missing and a torn steps file
    spec = tmp_path / "spec"
    shutil.copytree(run_dir / "speculate", spec)
    summary = json.loads((spec / "summary.json").read_text())
    for name in PREDICTORS:
        for key in ("sweep", "per_level", "per_tool", "per_step_index", "rates", "simulation_at_k"):
            summary[name].pop(key, None)
    summary.pop("paired")
    summary.pop("latency_model")
    (spec / "summary.json").write_text(json.dumps(summary))
    with open(spec / "steps.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"predictor": "lora", "id": "torn')
    (spec / "broken.summary.json").write_text("{not json")
    md_path, html_path = write_report(spec)
    md = md_path.read_text()
    assert _section_titles(md) == ["At a glance", "Speculation", "Setup", "Inputs skipped"]
    for name in PREDICTORS:
        assert f"| **{name}** |" in md
    assert "broken.summary.json" in md and "unreadable" in md
    assert "<img" in html_path.read_text()

    # training only
    train = tmp_path / "train"
    shutil.copytree(run_dir / "adapter", train / "adapter")
    md = write_report(train)[0].read_text()
    assert _section_titles(md) == ["At a glance", "Training", "Setup"]
    assert (train / "figures" / "loss_curves.svg").is_file()

    # a comparison without its rows: summary tables and figures, no examples
    comp = tmp_path / "comp"
    comp.mkdir()
    shutil.copy(run_dir / "compare.summary.json", comp)
    md = write_report(comp)[0].read_text()
    assert "Base model vs adapter" in md and "### Example steps" not in md


def test_cli_report_and_bad_input(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    proc = run_cli("report", run_dir / "speculate", "--out", out, "--title", "Replay only", check=True)
    assert "report.html" in proc.stderr
    assert (out / "report.html").is_file() and (out / "report.md").read_text().startswith("# Replay only")
    missing = run_cli("report", tmp_path / "nope")
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1 and "no such run directory" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run_cli("report", empty)
    assert nothing.returncode == 2 and "nothing to report" in nothing.stderr


def test_failure_modes_partition_first_calls() -> None:
    gold = [{"tool_name": "search", "arguments": {"query": "a"}}]
    rows = [
        {"gold_calls": gold, "pred_calls": gold},  # correct
        {"gold_calls": gold, "pred_calls": [{"tool_name": "search", "arguments": {"query": "B"}}]},
        {"gold_calls": gold, "pred_calls": [{"tool_name": "wikipedia", "arguments": {}}]},
        {
            "gold_calls": gold,
            "pred_calls": [{"tool_name": "teleport", "arguments": {}}],
            "unknown_tools": ["teleport"],
        },
        {"gold_calls": gold, "pred_calls": []},
        {"gold_calls": gold, "pred_calls": gold * 4},  # correct first call, but a loop and over-action
    ]
    counts = failure_modes(rows)
    assert counts == {
        "examples": 6,
        "correct": 2,
        "no_call": 1,
        "unknown_tool": 1,
        "wrong_tool": 1,
        "wrong_arguments": 1,
        "loop": 1,
        "over_action": 1,
    }
    assert failure_modes([{"gold_calls": gold, "lora_pred_calls": []}], "lora_")["no_call"] == 1


# --------------------------------------------------------------------------- headless Chromium
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# Chromium's own background services (updates, network time, sign-in) that it contacts at start
# whatever the page; none of them is asked for by the report, and none carries a page's Referer.
BROWSER_HOSTS = {
    "update.googleapis.com",
    "clients2.google.com",
    "accounts.google.com",
    "optimizationguide-pa.googleapis.com",
    "content-autofill.googleapis.com",
    "safebrowsingohttpgateway.googleapis.com",
}


class _Recorder(http.server.SimpleHTTPRequestHandler):
    """Serves the report directory and records every request the browser makes: it is the
    browser's proxy too (loopback included), so a request for anything beyond the page itself
    reaches it as an absolute URL or a CONNECT — recorded and refused."""

    requests: ClassVar[list[tuple[str, str, str | None]]] = []

    def _record(self, method: str) -> None:
        self.requests.append((method, self.path, self.headers.get("Referer")))

    def do_GET(self) -> None:
        self._record("GET")
        parts = urllib.parse.urlsplit(self.path)
        if parts.netloc and parts.netloc != f"127.0.0.1:{self.server.server_address[1]}":
            self.send_error(403)
            return
        self.path = parts.path or "/"
        super().do_GET()

    def do_CONNECT(self) -> None:
        self._record("CONNECT")
        self.send_error(403)

    def do_POST(self) -> None:
        self._record("POST")
        self.send_error(403)

    def log_message(self, *args) -> None:
        pass


def _host(method: str, target: str) -> str:
    return target.rsplit(":", 1)[0] if method == "CONNECT" else urllib.parse.urlsplit(target).hostname or ""


def _chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package `chromium`)")
def test_html_renders_in_chromium_without_network(run_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "page"
    write_report(run_dir, out)
    # a control page that does make an external request: proves the recorder would see one
    (out / "control.html").write_text('<p>x</p><img src="http://example.invalid/pixel.png">')
    _Recorder.requests = []
    handler = lambda *a, **kw: _Recorder(*a, directory=str(out), **kw)  # noqa: E731
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        port = server.server_address[1]
        origin = f"http://127.0.0.1:{port}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            proxy = (f"--proxy-server={origin}", "--proxy-bypass-list=<-loopback>")
            shot = tmp_path / "shot.png"
            proc = _chromium(
                *proxy, f"--screenshot={shot}", "--window-size=1280,4000", f"{origin}/report.html"
            )
            assert shot.is_file(), proc.stderr[-2000:]
            dom = _chromium(*proxy, "--dump-dom", f"{origin}/report.html")
            report_requests = list(_Recorder.requests)
            _chromium(*proxy, "--dump-dom", f"{origin}/control.html")
            control_requests = _Recorder.requests[len(report_requests) :]
        finally:
            server.shutdown()
    # the report: exactly one request per load (the page itself), nothing else from the page
    mine = [(m, t) for m, t, _ in report_requests if _host(m, t) == "127.0.0.1"]
    assert mine == [("GET", f"{origin}/report.html")] * 2, report_requests
    foreign = [(m, t, ref) for m, t, ref in report_requests if _host(m, t) != "127.0.0.1"]
    assert all(ref is None and _host(m, t) in BROWSER_HOSTS for m, t, ref in foreign), foreign
    # the control page's external image was seen, with the page as its referrer
    assert any(
        _host(m, t) == "example.invalid" and (ref or "").startswith(origin) for m, t, ref in control_requests
    ), control_requests
    # the rendered DOM holds the figures and tables
    assert dom.stdout.count("<img") == len(list((out / "figures").glob("*.png")))
    assert dom.stdout.count("<table") >= 8
    assert "Speculation" in dom.stdout and "hybrid" in dom.stdout
    # the screenshot is a real page: the full size, many colours, mostly not blank
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 4000)
    small = image.resize((320, 1000))
    colours = small.getcolors(maxcolors=1 << 16) or []
    assert len(colours) > 200
    non_white = sum(n for n, (r, g, b) in colours if min(r, g, b) < 235) / (320 * 1000)
    assert non_white > 0.08


def test_repeated_figures_are_named_after_their_result() -> None:
    from specdecode.report.build import figure_suffixes

    assert figure_suffixes(["compare", "compare_trace"]) == ["", "_compare_trace"]
    assert figure_suffixes(["replay", "replay", "my run"]) == ["", "_replay", "_my_run"]
    assert figure_suffixes(["a", "b", "b"]) == ["", "_b", "_b_2"]
