"""`/api/v1/datasets`: upload an ImageFolder archive (zip or tar), list the uploaded ones."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, UploadFile
from starlette.concurrency import run_in_threadpool

from nas.service import datasets as dataset_service
from nas.service.errors import InvalidInput, UserError
from server.auth import ReadAccess, WriteAccess
from server.deps import SettingsDep
from server.schemas import DatasetOut, errors

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])
CHUNK = 1 << 20


class TooLarge(UserError):
    status = 413


@router.post("", status_code=201, response_model=DatasetOut,
             responses=errors(400, 401, 403, 413, 422))
async def upload(file: UploadFile, _: WriteAccess, settings: SettingsDep) -> DatasetOut:
    """A zip or tar of class folders of images (optionally under `train/`). Refused with the
    reason: members that escape the folder, links, too many or too large files, a zip bomb,
    images that do not decode, fewer than 2 classes. Name it in a search config as
    `dataset: {name: imagefolder, id: <id>}`."""
    limit = settings.max_upload_mb << 20
    with tempfile.TemporaryDirectory(prefix="nas-upload-") as folder:
        archive = Path(folder) / "upload"
        size = 0
        with open(archive, "wb") as sink:
            while chunk := await file.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"the upload is larger than {settings.max_upload_mb} MiB "
                                   f"(NAS_MAX_UPLOAD_MB)")
                sink.write(chunk)
        if size == 0:
            raise InvalidInput("the upload is empty")
        imported = await run_in_threadpool(dataset_service.add, archive, settings.datasets_dir)
    return DatasetOut.of(imported)


@router.get("", response_model=list[DatasetOut], responses=errors(401))
def list_datasets(_: ReadAccess, settings: SettingsDep) -> list[DatasetOut]:
    return [DatasetOut.of(found) for found in dataset_service.listing(settings.datasets_dir)]

