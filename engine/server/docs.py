"""The interactive API docs at ``/docs``, served without the internet.

FastAPI's own page loads Swagger UI from a CDN, so on a machine without internet access it
is blank. This page loads it from the ``swagger-ui-bundle-v2`` package instead: its script,
stylesheet and icon are served at literal paths beside ``/docs`` (no other URL is named).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

DOCS = "/docs"
ASSETS = {  # URL path -> (file in the bundle, media type)
    f"{DOCS}/swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript"),
    f"{DOCS}/swagger-ui.css": ("swagger-ui.css", "text/css"),
    f"{DOCS}/favicon-32x32.png": ("favicon-32x32.png", "image/png"),
}
# validatorUrl off: Swagger UI would otherwise ask validator.swagger.io about the document.
PARAMETERS = {"validatorUrl": None, "deepLinking": True}


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """``GET /docs`` and its assets (the app is made with ``docs_url=None``)."""
    folder = Path(str(swagger_ui_path))

    async def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}", title=f"{app.title} - API docs",
            swagger_js_url=f"{root}{DOCS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS}/favicon-32x32.png",
            swagger_ui_parameters=PARAMETERS)

    app.add_api_route(DOCS, docs, methods=["GET"], include_in_schema=False)
    for path, (name, media_type) in ASSETS.items():
        app.add_api_route(path, _asset(folder / name, media_type), methods=["GET"],
                          include_in_schema=False)


def _asset(file: Path, media_type: str) -> Callable[[], Awaitable[FileResponse]]:
    async def asset() -> FileResponse:
        # Versioned with the installed package: a browser may keep it for a day.
        return FileResponse(file, media_type=media_type,
                            headers={"Cache-Control": "public, max-age=86400"})

    return asset
