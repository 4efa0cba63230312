"""What a route depends on: the app's store and settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from nas.store import Store
from server.settings import ServerSettings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
