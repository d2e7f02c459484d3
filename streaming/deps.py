"""What every REST route needs, as `Annotated` dependencies: the settings, the caller (a bearer
token), the grant check (`streaming/grants.py`) and the app's `Serving` (built in the lifespan)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from resources.settings import Settings
from streaming import grants
from streaming.auth import AuthError, Principal, verify_token
from streaming.data.serving import Serving

_bearer = HTTPBearer(auto_error=False, description="An HS256 JWT signed with CC_JWT_SECRET (claims sub, exp).")


# Every dependency here is async: checking an HS256 token takes microseconds, and FastAPI would
# run a sync dependency in the thread pool, a handoff to another thread and back that costs each
# request a wait for the scheduler (milliseconds when a dbt build holds the cores).

async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def principal(settings: SettingsDep,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    try:
        return verify_token(settings.jwt_secret, credentials.credentials if credentials else None)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc


User = Annotated[Principal, Depends(principal)]


async def authorize(request: Request, user: User) -> None:
    """403 unless the token's `rooms` / `scopes` grant this route (`streaming.grants`)."""
    route = request.scope.get("route")
    need = grants.need_of(request.method, getattr(route, "path_format", ""),
                          {k: request.query_params.getlist(k) for k in request.query_params})
    refused = grants.refusal(user, need)
    if refused:
        raise HTTPException(403, refused)


async def get_serving(request: Request) -> Serving:
    return request.app.state.serving


Data = Annotated[Serving, Depends(get_serving)]
