"""Property tests (Hypothesis) for what reads untrusted text: the tool-call parser, the JSONL
reader, the stop/cut logic of the evaluation core, and the metrics.

Examples are bounded (``max_examples``) and have no deadline, so the whole file stays within a
few seconds to a minute on a loaded two-core machine.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from specdecode.errors import InputError
from specdecode.evaluate.metrics import (
    args_match,
    example_metrics,
    mcnemar_exact,
    name_f1,
    paired,
    rate,
    same_call,
)
from specdecode.evaluate.parse import Parsed, parse_calls
from specdecode.evaluate.stops import CallScanner, cut_first_call, first_call_end
from specdecode.jsonl import iter_json_lines, read_records, write_jsonl
from specdecode.prompts import call_text
from specdecode.records import ToolCall, TraceRecord

FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------- strategies
# Text that looks like model output: fragments of every format the parser knows, shuffled.
FRAGMENTS = [
    "{", "}", "[", "]", '"', "\\", ":", ",", "\n", " ", "(", ")", "```", "```json\n",
    "<tool_call>", "</tool_call>", "Action:", "Action Input:", "Observation:", "Final Answer:",
    '"tool_name"', '"name"', '"arguments"', '"trace"', '"action"', "search", "wiki.get_page",
    "null", "true", "1e309", "-0", "'", "=", "\u2028", "\x00", "🙂",
]  # fmt: skip
model_text = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=40).map("".join)
any_text = st.text(max_size=200) | model_text
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}(\.[A-Za-z_][A-Za-z0-9_]{0,7})?", fullmatch=True)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=20)
    | st.lists(st.sampled_from(FRAGMENTS), max_size=6).map("".join)  # braces, tags, quotes in strings
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
# Argument names as tools declare them (what a speculator must reproduce).
arg_names = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)
arguments = st.dictionaries(arg_names, json_values, max_size=4)
calls = st.builds(ToolCall, tool_name=names, arguments=arguments)


def _no_call_start(text: str) -> bool:
    return "{" not in text and "<tool_call" not in text and "<" not in text[-12:]


prose = st.text(alphabet=st.characters(blacklist_characters="{<[`"), max_size=40)


# ----------------------------------------------------------------------------- parser
@FAST
@given(any_text)
def test_parser_never_raises_on_any_text(text: str) -> None:
    parsed = parse_calls(text)
    assert isinstance(parsed, Parsed)
    assert all(isinstance(c, ToolCall) and c.tool_name for c in parsed.calls)
    assert parsed.ok == (bool(parsed.calls) or parsed.no_call)


@SLOW
@given(any_text, st.sets(names, max_size=3))
def test_parser_with_known_tools_never_raises(text: str, known: set[str]) -> None:
    assert isinstance(parse_calls(text, known_tools=known or None), Parsed)


@FAST
@given(
    st.lists(
        st.one_of(
            json_values,
            st.dictionaries(st.sampled_from(["function", "name", "arguments", "type"]), json_values),
        ),
        max_size=3,
    )
)
def test_parser_never_raises_on_odd_structured_tool_calls(tool_calls: list[Any]) -> None:
    assert isinstance(parse_calls("", tool_calls=tool_calls), Parsed)  # type: ignore[arg-type]


@FAST
@given(calls)
def test_rendered_call_parses_back(call: ToolCall) -> None:
    """The trace form (``prompts.call_text``): what the speculator is trained to write."""
    parsed = parse_calls(call_text(call))
    assert len(parsed.calls) == 1, parsed
    assert parsed.calls[0].tool_name == call.tool_name
    assert parsed.calls[0].arguments == call.arguments


@FAST
@given(calls, prose)
def test_rendered_call_after_prose_parses_back(call: ToolCall, before: str) -> None:
    parsed = parse_calls(before + call_text(call))
    assert [c.tool_name for c in parsed.calls] == [call.tool_name]
    assert same_call(parsed.calls[0], call)


@FAST
@given(calls, st.sampled_from(["", "\n", " "]))
def test_hermes_call_parses_back(call: ToolCall, pad: str) -> None:
    """Qwen/Hermes form: ``<tool_call>{"name": …, "arguments": …}</tool_call>``."""
    body = json.dumps({"name": call.tool_name, "arguments": call.arguments}, ensure_ascii=False)
    parsed = parse_calls(f"<tool_call>{pad}{body}{pad}</tool_call>")
    # (a "</tool_call>" inside a string argument sends it through the JSON fallback: same call)
    assert len(parsed.calls) == 1
    assert parsed.calls[0].tool_name == call.tool_name
    assert parsed.calls[0].arguments == call.arguments


TAG_IN_STRING = [
    ToolCall(tool_name="a", arguments={"x": "</tool_call>"}),
    ToolCall(tool_name="b", arguments={}),
]


@FAST
@example(TAG_IN_STRING)
@given(st.lists(calls, min_size=2, max_size=3))
def test_hermes_blocks_parse_back_in_order(sequence: list[ToolCall]) -> None:
    text = "\n".join(
        "<tool_call>\n"
        + json.dumps({"name": c.tool_name, "arguments": c.arguments}, ensure_ascii=False)
        + "\n</tool_call>"
        for c in sequence
    )
    parsed = parse_calls(text)
    assert [(c.tool_name, c.arguments) for c in parsed.calls] == [
        (c.tool_name, c.arguments) for c in sequence
    ]


@FAST
@given(st.lists(calls, min_size=1, max_size=3))
def test_structured_tool_calls_parse_back(sequence: list[ToolCall]) -> None:
    """OpenAI ``tool_calls`` (arguments as a JSON string, as the API sends them)."""
    tool_calls = [
        {"type": "function", "function": {"name": c.tool_name, "arguments": json.dumps(c.arguments)}}
        for c in sequence
    ]
    parsed = parse_calls(None, tool_calls=tool_calls)
    assert [(c.tool_name, c.arguments) for c in parsed.calls] == [
        (c.tool_name, c.arguments) for c in sequence
    ]


# ----------------------------------------------------------------------------- stop / cut
@FAST
@given(any_text)
def test_first_call_end_is_inside_the_text(text: str) -> None:
    end = first_call_end(text)
    assert end is None or 0 < end <= len(text)
    cut = cut_first_call(text)
    assert text.startswith(cut)
    assert cut_first_call(cut) == cut  # idempotent
    if end is not None:
        assert first_call_end(cut) == end == len(cut)


@FAST
@given(any_text, st.lists(st.integers(0, 200), max_size=6))
def test_scanner_fed_in_pieces_agrees_with_whole_text(text: str, cuts: list[int]) -> None:
    """A decoding loop feeds new text step by step: any split gives the same end."""
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    scanner = CallScanner()
    for start, stop in itertools.pairwise(points):
        scanner.feed(text[start:stop])
    assert scanner.end == first_call_end(text)


@FAST
@given(calls, prose, any_text)
def test_cut_keeps_exactly_the_first_json_call(call: ToolCall, before: str, after: str) -> None:
    rendered = call_text(call)
    text = before + rendered + after
    assert first_call_end(text) == len(before) + len(rendered)
    cut = cut_first_call(text)
    assert cut == before + rendered
    assert same_call(parse_calls(cut).calls[0], call)


@FAST
@given(calls, any_text)
def test_cut_keeps_exactly_the_first_hermes_block(call: ToolCall, after: str) -> None:
    """Braces, quotes and even ``</tool_call>`` inside string arguments do not end the block."""
    body = json.dumps({"name": call.tool_name, "arguments": call.arguments}, ensure_ascii=False)
    block = f"<tool_call>\n{body}\n</tool_call>"
    assert first_call_end(block + after) == len(block)
    assert cut_first_call(block + after) == block


@FAST
@given(calls, st.integers(1, 400))
def test_an_unfinished_call_has_no_end(call: ToolCall, keep: int) -> None:
    rendered = call_text(call)
    assume(keep < len(rendered))
    assert first_call_end(rendered[:keep]) is None


# ----------------------------------------------------------------------------- JSONL reader
class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


def _tmp_file(data: bytes) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="prop-jsonl-"))
    path = folder / "in.jsonl"
    path.write_bytes(data)
    return path


line_bytes = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda v: json.dumps(v).encode(), json_values),
    st.builds(
        lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8"),
        st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    ),
    st.sampled_from([b"", b"\r", b"   ", b"\xef\xbb\xbf{}", b'{"id": "a"}', b'{"id": 1}', b"[]", b"{"]),
)
files = st.lists(line_bytes, max_size=8).map(lambda lines: b"\n".join(lines))


@SLOW
@given(files, st.sampled_from([Loose, TraceRecord]), st.booleans())
def test_jsonl_reader_returns_or_raises_input_error(data: bytes, model: type[BaseModel], skip: bool) -> None:
    """Any bytes: records, or one InputError naming the file and a line; never another exception."""
    path = _tmp_file(data)
    try:
        records = read_records(path, model, skip_invalid=skip)
    except InputError as exc:
        assert not skip
        assert exc.path == str(path) and exc.line is not None and exc.line >= 1
        assert "\n" not in exc.message
    else:
        assert all(isinstance(r, model) for r in records)


@FAST
@given(st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=4), max_size=6), st.booleans())
def test_jsonl_write_then_read_round_trips(rows: list[dict[str, Any]], crlf: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="prop-jsonl-"))
    path = folder / "rows.jsonl"
    assert write_jsonl(path, rows) == len(rows)
    if crlf:  # a file edited on Windows reads the same
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert [obj for _, obj in iter_json_lines(path)] == rows
    assert [p.name for p in folder.iterdir()] == ["rows.jsonl"]  # no temporary file left behind


@FAST
@given(
    st.lists(
        st.dictionaries(st.sampled_from("abc"), st.integers(-(2**63), 2**63 - 1), max_size=2),
        min_size=1,
        max_size=5,
    ),
    st.integers(0, 200),
)
def test_jsonl_truncated_tail_names_the_last_line(rows: list[dict[str, Any]], cut: int) -> None:
    """A file cut anywhere (a killed writer) fails on its last line, or reads a prefix of the rows."""
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path = _tmp_file(text[: min(cut, len(text))].encode())
    try:
        read = [obj for _, obj in iter_json_lines(path)]
    except InputError as exc:
        assert exc.line == text[: min(cut, len(text))].count("\n") + 1
    else:
        assert read == rows[: len(read)]


# ----------------------------------------------------------------------------- metrics
call_lists = st.lists(
    st.builds(
        ToolCall,
        tool_name=st.sampled_from(["search", "wiki", "calc"]),
        arguments=st.dictionaries(
            st.sampled_from(["q", "x"]), st.sampled_from([1, 1.0, "a", " A ", None]), max_size=2
        ),
    ),
    max_size=5,
)


@FAST
@given(call_lists, call_lists, st.booleans())
def test_example_metrics_are_bounded(gold: list[ToolCall], pred: list[ToolCall], ok: bool) -> None:
    m = example_metrics(gold, pred, ok)
    assert 0.0 <= m["name_f1"] <= 1.0
    assert m["args_match"] is None or 0.0 <= m["args_match"] <= 1.0
    for key in ("parse_ok", "first_call_name", "first_call_exact", "seq_exact", "loop", "over_action"):
        assert isinstance(m[key], bool)
    assert not m["first_call_exact"] or m["first_call_name"]
    assert not m["seq_exact"] or m["name_f1"] == 1.0
    assert name_f1(gold, pred) == pytest.approx(name_f1(pred, gold))


@FAST
@given(st.lists(calls, min_size=1, max_size=4))
def test_a_prediction_equal_to_gold_scores_full_marks(gold: list[ToolCall]) -> None:
    m = example_metrics(gold, gold, True)
    assert m["first_call_name"] and m["first_call_exact"] and m["seq_exact"]
    assert m["name_f1"] == 1.0 and args_match(gold, gold) == 1.0


@FAST
@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=60))
def test_paired_counts_add_up_and_swap(pairs: list[tuple[bool, bool]]) -> None:
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    ab, ba = paired(a, b), paired(b, a)
    assert ab["wins"] + ab["ties"] + ab["losses"] == len(pairs)
    assert min(ab["wins"], ab["ties"], ab["losses"]) >= 0
    assert (ab["wins"], ab["ties"], ab["losses"]) == (ba["losses"], ba["ties"], ba["wins"])
    assert 0.0 <= ab["mcnemar_p"] <= 1.0
    assert ab["mcnemar_p"] == ba["mcnemar_p"]


@FAST
@given(st.integers(0, 300), st.integers(0, 300))
def test_mcnemar_p_is_a_symmetric_probability(b: int, c: int) -> None:
    p = mcnemar_exact(b, c)
    assert 0.0 <= p <= 1.0 and not math.isnan(p)
    assert p == mcnemar_exact(c, b)
    if b == c:
        assert p == 1.0


@SLOW
@given(st.lists(st.one_of(st.none(), st.booleans(), st.floats(0, 1)), max_size=40))
def test_rate_and_interval_stay_in_bounds(values: list[Any]) -> None:
    r = rate(values)
    defined = [float(v) for v in values if v is not None]
    if not defined:
        assert r["mean"] is None and r["n"] == 0
        return
    lo, hi = r["ci95"]
    assert r["n"] == len(defined)
    assert min(defined) - 1e-9 <= lo <= hi <= max(defined) + 1e-9
    assert 0.0 <= r["mean"] <= 1.0


# ----------------------------------------------------------------------------- model names
@FAST
@example(prefix="./", rest="~0")  # pathlib reads "./~0" as user 0's home and raised RuntimeError
@example(prefix="~/", rest="")
@given(st.sampled_from([".", "./", "/", "~/", "../", "a/b/", "C:\\"]), st.text(max_size=20))
def test_path_like_model_names_are_never_hub_ids(prefix: str, rest: str) -> None:
    """A name that looks like a path and does not exist fails as a path, not as a hub lookup."""
    from specdecode.models import is_hub_id, resolve_model

    name = prefix + rest
    assert not is_hub_id(name)
    if not Path(os.path.expanduser(name)).exists() and not name.endswith(".gguf") and name != "smollm2-135m":
        with pytest.raises(InputError, match="no such model directory or file"):
            resolve_model(name)


@FAST
@given(
    st.from_regex(
        r"[A-Za-z0-9]([A-Za-z0-9_]{0,9}[A-Za-z0-9])?/[A-Za-z0-9][A-Za-z0-9_.-]{0,10}[A-Za-z0-9]",
        fullmatch=True,
    )
)
def test_org_name_is_a_hub_id(name: str) -> None:
    from specdecode.models import is_hub_id

    assume("--" not in name and ".." not in name)
    assert is_hub_id(name)


# ----------------------------------------------------------------------------- output guard
CORPUS_FILES = Path(__file__).resolve().parent / "corpus" / "files"
# command → (the input's name, the command line with {input} and {out}; the output is a folder
# for split and fit, whose files are named train.jsonl / pattern.json: the input takes that name)
WRITERS = {
    "convert": ("in.jsonl", ["data", "convert", "{input}", "--out", "{out}"]),
    "export": ("in.jsonl", ["traces", "export", "{input}", "--out", "{out}"]),
    "import": ("in.jsonl", ["traces", "import", "{input}", "--out", "{out}"]),
    "registry-out": (
        "in.jsonl",
        ["traces", "import", "{input}", "--out", "o.jsonl", "--registry-out", "{out}"],
    ),
    "split": ("train.jsonl", ["gaia", "split", "{input}", "--out-dir", "{out}"]),
    "fit": ("pattern.json", ["speculate", "fit", "{input}", "--out", "{out}", "--quiet"]),
}
FOLDER_OUTPUT = {"split", "fit"}


def _run_cli(args: list[str], cwd: Path) -> int:
    """The real entry point (what ``python -m specdecode`` runs), in this process: its exit code."""
    import contextlib
    import io
    import sys

    from specdecode.cli import main

    old_argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = ["specdecode", *args]
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            main()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    return 0


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    command=st.sampled_from(sorted(WRITERS)),
    how=st.sampled_from(["same", "dotted", "absolute", "symlink", "hardlink", "inside"]),
    inner=st.lists(st.from_regex(r"[a-z]{1,6}(\.jsonl)?", fullmatch=True), min_size=1, max_size=3),
)
def test_an_output_equal_to_or_inside_an_input_never_changes_it(
    command: str, how: str, inner: list[str]
) -> None:
    """Any spelling of an output path that is the input (relative, ``./a/../``, absolute, a
    symlink or a hard link to it), or that lies inside it, is refused (exit 2) and the input's
    bytes and its folder stay exactly as they were."""
    name, template = WRITERS[command]
    work = Path(tempfile.mkdtemp(prefix="prop-guard-"))
    data = work / "data"
    data.mkdir()
    source = data / name
    source.write_bytes((CORPUS_FILES / "good_traces.jsonl").read_bytes())
    if command in ("import", "registry-out"):  # conversations: what `traces import` reads
        assert _run_cli(["traces", "export", str(source), "--out", str(work / "conv.jsonl")], work) == 0
        source.write_bytes((work / "conv.jsonl").read_bytes())
        (work / "conv.jsonl").unlink()
    target = data if command in FOLDER_OUTPUT else source  # the output that lands on the input
    if how == "same":
        out = str(target.relative_to(work))
    elif how == "dotted":
        out = f"./{inner[0]}/../{target.relative_to(work)}"
        (work / inner[0]).mkdir(exist_ok=True)
    elif how == "absolute":
        out = str(target)
    elif how == "symlink":
        os.symlink(target, work / "link")
        out = "link"
    elif how == "hardlink":
        if command in FOLDER_OUTPUT:  # a folder cannot be hard-linked: a second link to the file
            os.link(source, work / name)
            out = "."
        else:
            os.link(source, work / "hard.jsonl")
            out = "hard.jsonl"
    else:  # inside the input file: a path under it
        out = str(Path(source.relative_to(work), *inner))
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    args = [part.replace("{input}", str(source.relative_to(work))).replace("{out}", out) for part in template]
    code = _run_cli(args, work)
    after = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    assert code == 2, (args, code)
    assert after == before, args
    shutil.rmtree(work, ignore_errors=True)
