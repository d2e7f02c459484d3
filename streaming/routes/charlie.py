"""/api/charlie: the Charlie instances with health and workload, commands to them, and the command log."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response

from streaming.data.charlie import instance_known, send_command
from streaming.data.queries import read_instances
from streaming.data.serving import TTL
from streaming.deps import Data, SettingsDep, User
from streaming.responses import BAD_BODY, cached_response, encode, no_store
from streaming.schemas import CharlieCommand, CommandLog, CommandLogEntry, CommandResult, InstanceList

router = APIRouter(prefix="/api/charlie", tags=["charlie"])


@router.get("/instances", response_model=InstanceList, summary="Charlie instances with health and workload")
def charlie_instances(request: Request, data: Data) -> Response:
    encoded = data.cached("instances", TTL["instances"], lambda: encode(read_instances(data)), live=True)
    return cached_response(request, encoded, TTL["instances"])


@router.post("/command", response_model=CommandResult, status_code=202,
             summary="Send a validated command to a Charlie instance's API, and log it",
             responses={**BAD_BODY, 404: {"description": "Unknown instance"},
                        409: {"description": "The instance refused it"},
                        502: {"description": "The instance's API did not answer"}})
def charlie_command(settings: SettingsDep, data: Data, user: User,
                    command: Annotated[CharlieCommand, Body()]) -> Response:
    if not instance_known(data, command.instance_id):
        raise HTTPException(404, f"no Charlie instance {command.instance_id!r}")
    command_id = str(uuid.uuid4())
    args = command.model_dump(by_alias=True, exclude={"instance_id", "command"}, exclude_none=True)
    data.store.log_command(command_id, command.instance_id, command.command, args, user.sub)
    status, http_status, result, error = send_command(settings, command_id, command.instance_id, command.command,
                                                      args, user.sub)
    data.store.finish_command(command_id, status, http_status, result, error)
    out = CommandResult(command_id=command_id, instance_id=command.instance_id, command=command.command,
                        status=status, http_status=http_status, result=result, error=error)
    return no_store(out, 202 if status == "accepted" else 409 if status == "rejected" else 502)


@router.get("/commands", response_model=CommandLog, summary="The command log, newest first")
def charlie_commands(data: Data, instance: Annotated[str | None, Query(max_length=100)] = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Response:
    return no_store(CommandLog(commands=[CommandLogEntry(**r) for r in data.store.commands(instance, limit)]))
