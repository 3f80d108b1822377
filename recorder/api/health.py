"""Liveness, readiness and metrics: unauthenticated, meant to be protected by the network.

Readiness asks the service (store reachable, disk has room, not draining) and answers 503
with the reasons as a problem document, so a load balancer stops sending work to the node
while it drains; liveness never touches the store, so a store outage does not restart it.
"""

from __future__ import annotations

import logging

from aiohttp import hdrs, web

from recorder.api.context import METRICS, SERVICE
from recorder.api.metrics import CONTENT_TYPE
from recorder.api.problems import problem
from recorder.api.routing import Route
from recorder.api.schemas import Health, Readiness

logger = logging.getLogger(__name__)

READINESS_RETRY_SECONDS = 5


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(body=Health().model_dump_json().encode(),
                        content_type="application/json")


async def readyz(request: web.Request) -> web.StreamResponse:
    try:
        reasons = await request.app[SERVICE].readiness()
    except Exception as exc:  # a readiness probe must answer, whatever the service does
        logger.warning("readiness check failed: %s", exc)
        reasons = [f"readiness check failed: {exc}"]
    if reasons:
        return problem(503, "Not ready", "; ".join(reasons), slug="not-ready",
                       instance=request.path, headers={hdrs.RETRY_AFTER:
                                                       str(READINESS_RETRY_SECONDS)},
                       reasons=reasons)
    return web.Response(body=Readiness().model_dump_json().encode(),
                        content_type="application/json")


async def metrics(request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[METRICS].render(),
                        headers={hdrs.CONTENT_TYPE: CONTENT_TYPE})


ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", healthz, "healthz", "Liveness", "health", auth=False,
          response=Health),
    Route("GET", "/readyz", readyz, "readyz", "Readiness (503 with the reasons)", "health",
          auth=False, response=Readiness, errors=(503,)),
    Route("GET", "/metrics", metrics, "metrics", "Prometheus metrics (text format)", "health",
          auth=False, response_media=("text/plain",)),
)
