"""The pages at ``/`` and ``/admin`` and their static files (docs/api.md: public, no token).

The page is only a client of the API: it holds no secret and every call it makes carries
the token the user pasted, so serving it without authentication gives nothing away. Each
file is its own row in the route table (no path parameter), so the OpenAPI document lists
exactly what is served and nothing else under ``/static`` can be reached.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import hdrs, web

from recorder.api.routing import Handler, Route

WEB_PACKAGE = "recorder.web"
# The page loads only its own script and style; media may come from a signed URL on another
# host (S3 presigned) and the camera preview is a MediaStream.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src * blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
# The admin page (/admin) shows pictures it fetched with the token as blob: URLs.
ADMIN_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
    "img-src 'self' data:;", "img-src 'self' data: blob:;")


def _asset(name: str, media_type: str,
           policy: str = CONTENT_SECURITY_POLICY) -> Handler:
    async def serve(_: web.Request) -> web.StreamResponse:
        body = resources.files(WEB_PACKAGE).joinpath(name).read_bytes()
        return web.Response(body=body, headers={
            hdrs.CONTENT_TYPE: media_type,
            # Revalidate every time: a page from an older release must not talk to a newer API.
            hdrs.CACHE_CONTROL: "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": policy,
        })

    serve.__name__ = f"serve_{name.replace('.', '_')}"
    return serve


ROUTES: tuple[Route, ...] = (
    Route("GET", "/", _asset("index.html", "text/html; charset=utf-8"), "page",
          "The web page: publish a camera, record, list and play", "page", auth=False,
          response_media=("text/html",),
          description="Plain HTML; it calls this API with the token the user pastes."),
    Route("GET", "/static/app.js", _asset("app.js", "text/javascript; charset=utf-8"),
          "pageScript", "The page's script", "page", auth=False,
          response_media=("text/javascript",)),
    Route("GET", "/static/style.css", _asset("style.css", "text/css; charset=utf-8"),
          "pageStyle", "The page's stylesheet", "page", auth=False,
          response_media=("text/css",)),
    Route("GET", "/admin", _asset("admin.html", "text/html; charset=utf-8",
                                  ADMIN_CONTENT_SECURITY_POLICY), "adminPage",
          "The admin page: recordings, nodes, queues and storage of the cluster", "page",
          auth=False, response_media=("text/html",),
          description="Plain HTML; it shows nothing but a token prompt until an admin token "
          "is accepted by the admin routes, which it calls with that token."),
    Route("GET", "/static/admin.js",
          _asset("admin.js", "text/javascript; charset=utf-8", ADMIN_CONTENT_SECURITY_POLICY),
          "adminPageScript", "The admin page's script", "page", auth=False,
          response_media=("text/javascript",)),
    Route("GET", "/static/admin.css",
          _asset("admin.css", "text/css; charset=utf-8", ADMIN_CONTENT_SECURITY_POLICY),
          "adminPageStyle", "The admin page's stylesheet", "page", auth=False,
          response_media=("text/css",)),
)
