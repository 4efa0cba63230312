"""`/api/v1/zoo`: the classic networks and published cells every search is compared with."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from nas.service import zoo
from server.auth import ReadAccess
from server.schemas import errors

router = APIRouter(prefix="/api/v1/zoo", tags=["zoo"])


class ZooEntry(BaseModel):
    name: str
    kind: str
    params: int
    flops: int = Field(description="multiply-adds of one 3x32x32 image, 10 classes")
    latency_ms: float = Field(description="median CPU milliseconds of one 3x32x32 image, "
                              "measured once by the server and kept")
    latency_threads: int = Field(description="CPU threads the latency was measured with")


@router.get("", response_model=list[ZooEntry], responses=errors(401, 422))
async def list_zoo(_: ReadAccess, cells: Annotated[int, Query(ge=1, le=zoo.MAX_CELLS)] = 2,
                   channels: Annotated[int, Query(ge=2, le=zoo.MAX_CHANNELS)] = 16
                   ) -> list[ZooEntry]:
    """Every zoo network and reference cell, sized at CIFAR size (3x32x32, 10 classes);
    `cells` and `channels` size the reference cells' networks."""
    rows = await run_in_threadpool(zoo.listing, cells, channels)
    return [ZooEntry(**row) for row in rows]
