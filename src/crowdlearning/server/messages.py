"""The client-to-server WebSocket messages of ``/ws/play``, validated (see docs/protocol.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = ["ClientMessage", "Input", "Start", "Stop", "parse_client_message"]

Unit = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Start(_Message):
    """Begin a run."""

    type: Literal["start"]
    mode: Literal["label", "takeover"] = "label"
    paid: bool = False
    track_seed: int | None = Field(default=None, ge=0)


class Input(_Message):
    """The player's input, answering frame ``tick``; ``steer: null`` hands the wheel back."""

    type: Literal["input"]
    tick: int = Field(ge=0)
    steer: Unit | None = None
    throttle: Unit | None = None
    intervene: bool = False


class Stop(_Message):
    """End the run now (it is judged)."""

    type: Literal["stop"]


class Ping(_Message):
    type: Literal["ping"]


ClientMessage = Annotated[Start | Input | Stop | Ping, Field(discriminator="type")]
_adapter: TypeAdapter[Start | Input | Stop | Ping] = TypeAdapter(ClientMessage)


def parse_client_message(text: str) -> Start | Input | Stop | Ping:
    """Parse one message (raises ``pydantic.ValidationError`` naming the bad field)."""
    return _adapter.validate_json(text)
