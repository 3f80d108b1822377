"""Shapes the edge answers with, beyond the core's RecordingState; used to validate nothing
but to document everything (the OpenAPI document renders them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from recorder.core.models import RecordingState


class RecordingView(RecordingState):
    """A recording's state as a caller is shown it (recorder.api.views): `local_path` is
    null and a source URL has no userinfo or query unless the caller is an admin."""

    local_path: str | None = Field(  # type: ignore[assignment]
        description="The recording's folder on its node (admins; null for others)")


class RecordingList(BaseModel):
    recordings: list[RecordingView] = Field(description="Newest first")
    count: int = Field(description="How many recordings this page holds")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page")


class ProblemError(BaseModel):
    location: str = Field(description="where: path.<name>, query.<name> or body.<field>...")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, with this API's extension members."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    limit: str | None = Field(None, description="429: the first limit that failed")
    current_status: str | None = Field(None, description="409: the recording's status")
    action: str | None = Field(None, description="409: the refused action")
    errors: list[ProblemError] | None = Field(None, description="400: each invalid input")
    reasons: list[str] | None = Field(None, description="/readyz 503: why the node is not ready")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """200 only; a node that is not ready answers a Problem with `reasons`."""

    status: Literal["ready"] = "ready"
