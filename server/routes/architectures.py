"""`/api/v1/architectures/{id}`: one architecture, its log, its export as a download."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from nas.service import architectures as architecture_service
from nas.service import exports
from server.auth import ReadAccess
from server.deps import StoreDep
from server.schemas import ArchitectureDetail, ArchitectureLogs, ArchitectureOut, errors

router = APIRouter(prefix="/api/v1/architectures", tags=["architectures"])
ERRORS = errors(401, 404, 422, not_found="unknown architecture id")
EXPORT_ERRORS = errors(401, 404, 409, 422, not_found="unknown architecture id",
                       conflict="found with another op set than this release builds")


@router.get("/{architecture_id}", response_model=ArchitectureDetail, responses=ERRORS)
def get_architecture(architecture_id: int, _: ReadAccess, store: StoreDep
                     ) -> ArchitectureDetail:
    """Genotype, metrics and per-epoch history."""
    record = store.get_architecture(architecture_id)
    metrics = {key: value for key, value in
               (record.metrics.to_json() if record.metrics else {}).items()
               if key not in ("history", "traceback")}
    return ArchitectureDetail(**ArchitectureOut.of(record).model_dump(),
                              history=architecture_service.history(record), metrics=metrics)


@router.get("/{architecture_id}/logs", response_model=ArchitectureLogs, responses=ERRORS)
def logs(architecture_id: int, _: ReadAccess, store: StoreDep) -> ArchitectureLogs:
    """What its training said: epochs, the error and its traceback; where it ran."""
    record = store.get_architecture(architecture_id)
    return ArchitectureLogs(id=record.id, state=record.state, error=record.error,
                            worker=record.metrics.worker if record.metrics else None,
                            log=architecture_service.log_lines(record))


@router.get("/{architecture_id}/export", response_class=Response, responses=EXPORT_ERRORS | {
    200: {"content": {"application/octet-stream": {}, "text/x-python": {},
                      "application/zip": {}},
          "description": "the file `nas export` writes (a zip when it writes several)"}})
async def export(
    architecture_id: int, _: ReadAccess, store: StoreDep,
    format: Literal["py", "torchscript", "onnx", "state-dict"] = "py",
    stem: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,100}$", description=(
        "name of the files (default architecture_<id>)"))] = None,
) -> Response:
    """Download the architecture as a standalone `.py` module (with its trained weights when
    kept: a zip), TorchScript, ONNX or a state dict with its genotype and settings."""
    picked = await run_in_threadpool(exports.by_id, store, architecture_id)
    download = await run_in_threadpool(exports.export_bytes, picked, format, stem)
    return Response(download.content, media_type=download.media_type, headers={
        "Content-Disposition": f'attachment; filename="{download.filename}"'})
