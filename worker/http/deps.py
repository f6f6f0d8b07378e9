"""What routes depend on, resolved per request from the app (FastAPI `Depends`): the runtime the
app was built with. Module-level routers stay free of closures over it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from worker.ops.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


AppRuntime = Annotated[Runtime, Depends(get_runtime)]
