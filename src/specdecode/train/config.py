"""Training settings live in ``specdecode.settings`` (declared once for CLI, YAML and summaries)."""

from specdecode.settings import TrainConfig, load_config

__all__ = ["TrainConfig", "load_config"]
