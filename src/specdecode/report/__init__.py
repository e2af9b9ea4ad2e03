"""Stage 8 — Markdown/HTML reports with plots (not built yet)."""
