"""/dashboard/dashboards and /dashboard/widgets: dashboards and their widgets, changed by their owner only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response

from streaming.auth import Principal
from streaming.data.serving import Serving
from streaming.deps import Data, User
from streaming.params import check_widget_config
from streaming.responses import BAD_BODY, NOT_OWNER, cached_response, encode, no_store
from streaming.schemas import (
    DashboardIn,
    DashboardList,
    DashboardOut,
    DashboardSummary,
    DashboardUpdate,
    WidgetIn,
    WidgetOut,
    WidgetUpdate,
)

router = APIRouter(prefix="/dashboard", tags=["dashboards"])


def _dashboard_out(d: dict) -> DashboardOut:
    return DashboardOut(**{**d, "widgets": [WidgetOut(**w) for w in d["widgets"]]})


def _owned(data: Serving, dashboard_id: str, user: Principal) -> dict:
    found = data.store.dashboard(dashboard_id)
    if found is None:
        raise HTTPException(404, f"no dashboard {dashboard_id!r}")
    if found["owner_id"] != user.sub:
        raise HTTPException(403, "only the dashboard's owner may change it")
    return found


@router.get("/dashboards", response_model=DashboardList, summary="All dashboards")
def list_dashboards(request: Request, data: Data) -> Response:
    out = DashboardList(dashboards=[DashboardSummary(**d) for d in data.store.dashboards()])
    return cached_response(request, encode(out), 0)


@router.post("/dashboards", response_model=DashboardOut, status_code=201,
             summary="Create a dashboard (owned by the token's subject), with its widgets", responses=BAD_BODY)
def create_dashboard(data: Data, user: User, body: DashboardIn) -> Response:
    for n, widget in enumerate(body.widgets):
        check_widget_config(widget.type, widget.config, ("body", "widgets", n, "config"))
    created = data.store.create_dashboard(body.name, body.config, user.sub,
                                          [w.model_dump() for w in body.widgets])
    return no_store(_dashboard_out(created), 201)


@router.get("/dashboards/{dashboard_id}", response_model=DashboardOut,
            summary="A dashboard with its widgets", responses={404: {"description": "Unknown dashboard"}})
def get_dashboard(request: Request, data: Data, dashboard_id: Annotated[str, Path(max_length=64)]) -> Response:
    found = data.store.dashboard(dashboard_id)
    if found is None:
        raise HTTPException(404, f"no dashboard {dashboard_id!r}")
    # Revalidated on every use (max-age 0): an edit shows at once, an unchanged one costs a 304.
    return cached_response(request, encode(_dashboard_out(found)), 0)


@router.put("/dashboards/{dashboard_id}", response_model=DashboardOut,
            summary="Rename or reconfigure a dashboard (its owner only)",
            responses={**BAD_BODY, **NOT_OWNER, 404: {"description": "Unknown dashboard"}})
def update_dashboard(data: Data, user: User, dashboard_id: Annotated[str, Path(max_length=64)],
                     body: DashboardUpdate) -> Response:
    _owned(data, dashboard_id, user)
    updated = data.store.update_dashboard(dashboard_id, body.name, body.config)
    if updated is None:
        raise HTTPException(404, f"no dashboard {dashboard_id!r}")
    return no_store(_dashboard_out(updated))


@router.delete("/dashboards/{dashboard_id}", status_code=204,
               summary="Delete a dashboard and its widgets (its owner only)",
               responses={**NOT_OWNER, 404: {"description": "Unknown dashboard"}})
def delete_dashboard(data: Data, user: User, dashboard_id: Annotated[str, Path(max_length=64)]) -> Response:
    _owned(data, dashboard_id, user)
    data.store.delete_dashboard(dashboard_id)
    return Response(status_code=204)


@router.post("/dashboards/{dashboard_id}/widgets", response_model=WidgetOut, status_code=201,
             summary="Add a widget to a dashboard (its owner only)",
             responses={**BAD_BODY, **NOT_OWNER, 404: {"description": "Unknown dashboard"}})
def add_widget(data: Data, user: User, dashboard_id: Annotated[str, Path(max_length=64)], body: WidgetIn) -> Response:
    _owned(data, dashboard_id, user)
    check_widget_config(body.type, body.config)
    widget = data.store.add_widget(dashboard_id, body.model_dump())
    if widget is None:
        raise HTTPException(404, f"no dashboard {dashboard_id!r}")
    return no_store(WidgetOut(**widget), 201)


def _owned_widget(data: Serving, widget_id: str, user: Principal) -> dict:
    widget = data.store.widget(widget_id)
    if widget is None:
        raise HTTPException(404, f"no widget {widget_id!r}")
    _owned(data, widget["dashboard_id"], user)
    return widget


@router.put("/widgets/{widget_id}", response_model=WidgetOut,
            summary="Change a widget's title, config or position (the dashboard's owner only)",
            responses={**BAD_BODY, **NOT_OWNER, 404: {"description": "Unknown widget"}})
def update_widget(data: Data, user: User, widget_id: Annotated[str, Path(max_length=64)],
                  body: WidgetUpdate) -> Response:
    widget = _owned_widget(data, widget_id, user)
    if body.config is not None:
        check_widget_config(widget["type"], body.config)
    updated = data.store.update_widget(widget_id, body.model_dump(exclude_none=True))
    return no_store(WidgetOut(**updated))  # type: ignore[arg-type]


@router.delete("/widgets/{widget_id}", status_code=204,
               summary="Remove a widget (the dashboard's owner only)",
               responses={**NOT_OWNER, 404: {"description": "Unknown widget"}})
def delete_widget(data: Data, user: User, widget_id: Annotated[str, Path(max_length=64)]) -> Response:
    _owned_widget(data, widget_id, user)
    data.store.delete_widget(widget_id)
    return Response(status_code=204)
