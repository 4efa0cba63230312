"""`/api/v1/architectures/{id}`: one architecture, its log, its export as a download."""

from __future__ import annotations

from fastapi import APIRouter

from nas.service import architectures as architecture_service
from server.auth import ReadAccess
from server.deps import StoreDep
from server.schemas import ArchitectureDetail, ArchitectureLogs, ArchitectureOut

router = APIRouter(prefix="/api/v1/architectures", tags=["architectures"])
ERRORS = {404: {"description": "unknown architecture id"}}


@router.get("/{architecture_id}", response_model=ArchitectureDetail, responses=ERRORS)
def get_architecture(architecture_id: int, _: ReadAccess, store: StoreDep
                     ) -> ArchitectureDetail:
    """Genotype, metrics and per-epoch history."""
    record = store.get_architecture(architecture_id)
    metrics = {key: value for key, value in (record.metrics or {}).items()
               if key not in ("history", "traceback", "weights")}
    return ArchitectureDetail(**ArchitectureOut.of(record).model_dump(),
                              history=architecture_service.history(record), metrics=metrics)


@router.get("/{architecture_id}/logs", response_model=ArchitectureLogs, responses=ERRORS)
def logs(architecture_id: int, _: ReadAccess, store: StoreDep) -> ArchitectureLogs:
    """What its training said: epochs, the error and its traceback; where it ran."""
    record = store.get_architecture(architecture_id)
    return ArchitectureLogs(id=record.id, state=str(record.state), error=record.error,
                            worker=(record.metrics or {}).get("worker"),
                            log=architecture_service.log_lines(record))
