"""Stage 1 — GAIA utilities: load a local copy, split by level, annotator gold traces."""

from specdecode.gaia.annotator import MappingReport, annotator_trace
from specdecode.gaia.load import load_hub, load_local
from specdecode.gaia.split import stratified_split

__all__ = ["MappingReport", "annotator_trace", "load_hub", "load_local", "stratified_split"]
