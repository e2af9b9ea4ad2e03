"""Gold traces from GAIA's ``Annotator Metadata`` (Steps, Tools), mapped onto a registry.

The annotators wrote free text ("1. Web browser", "2. Search engine"); an alias table maps
those phrases to registry tool names. Each numbered step becomes a trace step whose action
is the first tool that the step's text mentions; steps that mention no tool are folded
into the next step's thought. The last step is ``final_answer``. What could not be mapped
is counted and reported, never silently dropped.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from specdecode.records import QuestionRecord, ToolCall, TraceRecord, TraceStep

# phrase (lower case, found in the text) → role. Longer phrases are tried first.
ALIASES: dict[str, str] = {
    "web browser": "browse",
    "browser": "browse",
    "google search": "search",
    "search engine": "search",
    "web search": "search",
    "search": "search",
    "google": "search",
    "wikipedia": "wiki",
    "calculator": "calc",
    "calculate": "calc",
    "python": "python",
    "code": "python",
    "programming": "python",
    "spreadsheet": "file",
    "excel": "file",
    "pdf": "file",
    "file": "file",
    "text editor": "file",
    "word": "file",
    "image recognition": "vision",
    "computer vision": "vision",
    "image": "vision",
    "video": "vision",
    "ocr": "ocr",
    "world bank": "worldbank",
}
ROLES: dict[str, dict[str, str]] = {
    "tools4": {
        "search": "search",
        "browse": "search",
        "wiki": "wikipedia",
        "calc": "calculator",
        "python": "calculator",
    },
    "tools17": {
        "search": "web_search",
        "browse": "web_browse",
        "wiki": "wiki.get_page",
        "calc": "calculate",
        "python": "python",
        "file": "file_read",
        "vision": "vision_analyze",
        "ocr": "vision_ocr",
        "worldbank": "finance.get_world_bank_data",
    },
}
_PATTERN = re.compile("|".join(re.escape(a) for a in sorted(ALIASES, key=len, reverse=True)))
_ARG_FOR = {
    "search": "query",
    "browse": "url",
    "wiki": "title",
    "calc": "expression",
    "python": "code",
    "file": "path",
    "vision": "question",
    "ocr": "image_path",
    "worldbank": "indicator",
}


@dataclass
class MappingReport:
    """What the annotator conversion could and could not map."""

    records: int = 0
    skipped: list[str] = field(default_factory=list)
    unmapped_tools: Counter[str] = field(default_factory=Counter)
    mapped_tools: Counter[str] = field(default_factory=Counter)


def _numbered(text: str) -> list[str]:
    """Split '1. foo\\n2. bar' (or one item per line) into items without their numbers."""
    items = [re.sub(r"^\s*(\d+[.)]|[-*•])\s*", "", line).strip() for line in text.splitlines()]
    return [i for i in items if i]


def _role(text: str, allowed: dict[str, str]) -> str | None:
    for match in _PATTERN.finditer(text.lower()):
        role = ALIASES[match.group(0)]
        if role in allowed:
            return role
    return None


def _argument(role: str, step: str, question: QuestionRecord) -> dict[str, Any]:
    quoted = re.findall(r"[\"“']([^\"”']{3,80})[\"”']", step)
    value: Any = quoted[0] if quoted else step
    if role in ("file", "ocr") and question.file_name:
        value = question.file_name
    if role == "vision" and question.file_name:
        return {"image_path": question.file_name, "question": step}
    return {_ARG_FOR[role]: value}


def annotator_trace(question: QuestionRecord, registry: str, report: MappingReport) -> TraceRecord | None:
    """One gold trace from a question's annotator metadata, or None when it has no steps."""
    meta = question.annotator_metadata or {}
    allowed = ROLES[registry]
    for tool in _numbered(str(meta.get("Tools") or "")):
        if tool.lower() in ("none", "no tools", "n/a"):
            continue
        role = _role(tool, allowed)
        (report.mapped_tools if role else report.unmapped_tools)[tool.lower()] += 1
    steps, pending = [], []
    for text in _numbered(str(meta.get("Steps") or "")):
        role = _role(text, allowed)
        if role is None:
            pending.append(text)
            continue
        action = ToolCall(tool_name=allowed[role], arguments=_argument(role, text, question))
        steps.append(TraceStep(thought=" ".join([*pending, text]), action=action))
        pending = []
    if not steps and not pending:
        report.skipped.append(question.id)
        return None
    answer = question.final_answer or ""
    steps.append(
        TraceStep(
            thought=" ".join(pending) or "I have the answer.",
            action=ToolCall(tool_name="final_answer", arguments={"answer": answer}),
        )
    )
    report.records += 1
    return TraceRecord(
        id=question.id,
        question=question.question,
        level=question.level,
        trace=steps,
        final_answer=answer,
        source="annotator",
    )
