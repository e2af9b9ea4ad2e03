"""Where a table's predicted arguments come from: small named sources, chosen by cross-validation.

Sources (each fitted on training calls of one tool):

* ``memory``   — the whole argument set most often seen with this tool after this previous tool
  (else overall): right when a tool is called the same way every time;
* ``constant`` — per argument, its most frequent value (after this previous tool, else overall);
* ``span``     — per argument, a copy rule: a span of the question or of an earlier observation
  found beside anchors (the words before and/or after it), with fixed text around it;
* ``field``    — per argument, a field of a structured (JSON) observation: the value at a path
  (``items[*].product_id``) of the latest result of a given tool, every value at that path (for a
  list argument such as ``item_ids``), or a plain-text result as a whole (a user id).

Copied values keep their original text and case. Which source fills an argument is decided per
tool and argument — and per previous tool where there are at least ``MIN_SUPPORT`` training calls
— by k-fold cross-validation on the training traces only: each source is fitted on k - 1 folds and
scored on the held-out fold, sources are ranked by held-out accuracy, and at prediction the best
one that yields a value valid for the argument's schema wins. The per-argument plan and whole-call
memory compete the same way. The fitted plan says which source each argument uses and why
(``describe``), and every candidate carries its held-out probability of being right.
"""

from specdecode.speculate.arguments.plan import (
    FOLDS,
    MIN_SUPPORT,
    ArgumentTable,
    Held,
    ToolPlan,
    fit_argument_table,
    folds_of,
    table_from_json,
    table_to_json,
    training_calls,
)
from specdecode.speculate.arguments.rules import (
    FieldRule,
    ShapeRule,
    SpanRule,
    field_candidates,
    shape_candidates,
    shape_of,
    span_candidates,
)
from specdecode.speculate.arguments.sources import ArgumentSources, RuleSet, fit_sources
from specdecode.speculate.arguments.views import START, Result, Text, View, Views, key

__all__ = [
    "FOLDS",
    "MIN_SUPPORT",
    "START",
    "ArgumentSources",
    "ArgumentTable",
    "FieldRule",
    "Held",
    "Result",
    "RuleSet",
    "ShapeRule",
    "SpanRule",
    "Text",
    "ToolPlan",
    "View",
    "Views",
    "field_candidates",
    "fit_argument_table",
    "fit_sources",
    "folds_of",
    "key",
    "shape_candidates",
    "shape_of",
    "span_candidates",
    "table_from_json",
    "table_to_json",
    "training_calls",
]
