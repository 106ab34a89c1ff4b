"""The curators' web catalogue (FastAPI, server-rendered pages, a JSON API)."""
