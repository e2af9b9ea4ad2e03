"""``python -m specdecode.integrations.otlp FILE... --out traces.jsonl``."""

from specdecode.integrations.otlp.command import main

main()
