"""The REST API: one router per tag, every route behind the bearer token and its grant (`deps.authorize`)."""

from fastapi import APIRouter, Depends

from streaming.deps import authorize
from streaming.routes import charlie, dashboards, events, metrics, overview, widgets, workflows

api_router = APIRouter(dependencies=[Depends(authorize)],
                       responses={401: {"description": "Missing, invalid or expired bearer token"},
                                  403: {"description": "The token's `rooms` or `scopes` claim does not grant this"},
                                  503: {"description": "No marts to read yet (no build served), or the warehouse "
                                                       "is gone: retry after `Retry-After` seconds"}})
for module in (overview, metrics, workflows, events, charlie, dashboards, widgets):
    api_router.include_router(module.router)
