"""The sidecar's REST API: one router per tag (dashboard reads, dashboards and widgets, workflows,
events, Charlie commands, alerts), each module holding its routes only.

Every route needs `Authorization: Bearer <HS256 JWT signed with CC_JWT_SECRET>` and a token that
grants it (`deps.authorize`, `streaming/grants.py`), and takes only the query parameters it
declares (`params.known_parameters`: any other is a 400 naming it). Reads come from the warm marts
plus the events seen since the last build (`streaming/data/`), and carry `Cache-Control: private,
max-age=<the seeds' TTL>` and an `ETag` (a matching `If-None-Match` gets 304: `streaming/responses.py`).
"""

from fastapi import APIRouter, Depends

from streaming.deps import authorize
from streaming.params import known_parameters
from streaming.responses import with_unknown_parameter
from streaming.routes import alerts, charlie, dashboards, events, metrics, overview, widgets, workflows

# The token first (401/403 say nothing of the route's parameters), then the parameters' names.
api_router = APIRouter(dependencies=[Depends(authorize), Depends(known_parameters)],
                       responses={401: {"description": "Missing, invalid or expired bearer token"},
                                  403: {"description": "The token's `rooms` or `scopes` claim does not grant this"},
                                  429: {"description": "Over the token's rate limit for reads or changes "
                                                       "(`CC_RATE_LIMIT_READ`, `CC_RATE_LIMIT_COMMAND`): retry "
                                                       "after `Retry-After` seconds"},
                                  503: {"description": "No marts to read yet (no build served), or the warehouse "
                                                       "is gone: retry after `Retry-After` seconds"}})
for module in (overview, metrics, workflows, events, charlie, alerts, dashboards, widgets):
    for route in module.router.routes:
        route.responses = with_unknown_parameter(route.responses)
    api_router.include_router(module.router)
