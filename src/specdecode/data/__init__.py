"""Stage 3 — data: synthetic GAIA-format traces and conversion to chat training data."""

from specdecode.data.convert import convert, convert_record, step_id
from specdecode.data.synth import synthesize

__all__ = ["convert", "convert_record", "step_id", "synthesize"]
