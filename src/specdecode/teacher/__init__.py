"""Stage 2 — teacher traces from Gemini or an OpenAI-compatible server (not built yet)."""
