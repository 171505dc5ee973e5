"""The built admin app (frontend/dist) at ``/``, or a page that says how to build it."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

FRONTEND_DIST = Path(__file__).resolve().parents[4] / "frontend" / "dist"
NOT_BUILT = ("<h1>genrec admin API</h1><p>The admin app is not built: run <code>make install</code>"
             " (npm ci and vite build in frontend/). The API is at <a href='/docs'>/docs</a>.</p>")


def mount_frontend(app: FastAPI, static_dir: Path | None) -> None:
    """Serve the built admin app at / (mounted after every API route, so those win)."""
    if static_dir is not None and (static_dir / "index.html").exists():
        app.mount("/", StaticFiles(directory=static_dir, html=True), name="frontend")
        return

    @app.get("/", include_in_schema=False)
    async def not_built() -> HTMLResponse:
        return HTMLResponse(NOT_BUILT, status_code=200)
