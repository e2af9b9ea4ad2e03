"""Stage 7 — speculation replay and executor (not built yet)."""
