"""/docs works without the internet: the page names only the server's own URLs, and each of
them answers with the Swagger UI script, stylesheet or icon from the installed package."""

from __future__ import annotations

import re

import httpx

ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


async def test_the_docs_page_names_only_local_urls_and_they_answer(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")  # no key needed, like the OpenAPI document
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "://" not in html  # no CDN, no validator, no font service: nothing off this server
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"url: '([^']+)'", html)
    assert "/api/v1/openapi.json" in urls
    assets = [u for u in urls if u != "/api/v1/openapi.json"]
    assert {u.rsplit(".", 1)[1] for u in assets} == {"js", "css", "png"}
    for url in assets:
        assert url.startswith("/docs/") and not url.startswith("//"), url
        answer = await client.get(url)
        assert answer.status_code == 200, url
        expected = ASSET_TYPES["." + url.rsplit(".", 1)[1]]
        assert answer.headers["content-type"].startswith(expected), (url, answer.headers)
        assert len(answer.content) > 500, url
    script = (await client.get(next(u for u in assets if u.endswith(".js")))).text
    assert "SwaggerUIBundle" in script  # the real bundle, which the page's inline script calls
    document = await client.get("/api/v1/openapi.json")
    assert document.status_code == 200 and document.json()["openapi"].startswith("3.1")


async def test_the_docs_assets_are_not_taken_for_triggers(client: httpx.AsyncClient) -> None:
    """The assets live beside /docs, which triggers may not use: served without a key."""
    for path in ("/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"):
        assert (await client.get(path)).status_code == 200
    assert (await client.get("/docs/nothing-here.js")).status_code == 401  # the trigger catch-all
