"""`POST /api/v1/searches/{id}/baselines`: classic zoo networks trained beside a search.

Training takes minutes, so the request only checks and queues: it records one WAITING
architecture of role "zoo" per network and answers 202 with them, and a detached
`nas baselines` process of its own session trains them on this server's machine
(`nas.service.baselines.launch`; its log in `home/logs/`). Follow them through the search's
architectures (`?role=zoo`), its events or `nas show`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from nas.service import baselines
from nas.service.errors import InvalidInput
from server.auth import WriteAccess
from server.deps import SettingsDep, StoreDep
from server.schemas import ArchitectureOut, errors
from server.strict_json import StrictJSONRoute

router = APIRouter(prefix="/api/v1/searches", tags=["searches"],
                   route_class=StrictJSONRoute)
ZooName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class BaselinesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    archs: list[ZooName] = Field(
        default_factory=list, max_length=baselines.MAX_ARCHS,
        description=f"zoo networks (`GET /api/v1/zoo`); empty: "
                    f"{', '.join(baselines.DEFAULT_ARCHS)}")


class BaselinesOut(BaseModel):
    search_id: str
    architectures: list[ArchitectureOut] = Field(description="the queued rows (WAITING)")


@router.post("/{search_id}/baselines", status_code=202, response_model=BaselinesOut,
             responses=errors(400, 401, 403, 404, 409, 422, not_found="unknown search id",
                              conflict="the search has baselines still training"))
def train_baselines(search_id: str, _: WriteAccess, store: StoreDep, settings: SettingsDep,
                    body: Annotated[BaselinesIn | None, Body()] = None) -> BaselinesOut:
    """Train zoo networks on the search's dataset with its from-scratch recipe, in the
    background; they are recorded in the search with role "zoo". A server whose
    `allowed_evaluators` leave out `standalone` trains no network from scratch, so no
    baselines either."""
    if not settings.trains_from_scratch:
        raise InvalidInput(f"this server trains no network from scratch (evaluators: "
                           f"{', '.join(settings.allowed_evaluators)}), so no zoo baselines")
    rows = baselines.launch(store, search_id, (body or BaselinesIn()).archs,
                            store_url=settings.store_url, home=settings.home)
    return BaselinesOut(search_id=search_id,
                        architectures=[ArchitectureOut.of(row) for row in rows])
