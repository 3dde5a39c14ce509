"""The client-to-server WebSocket messages of ``/ws/play``, validated (see docs/protocol.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from crowdlearning.learning.device import key_code

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
    """The player's input, answering frame ``tick``: what the device did.

    Analog devices (``device`` "analog", the default, "mouse", "touch", "gamepad") send values
    (``steer: null`` hands the wheel back); a keyboard (``device: "keyboard"``) sends the keys
    it holds (``left``, ``right``, ``up``, ``down``) and the server's wheel decides what they
    mean (``learning.device``). A message mixing the two forms is refused.
    """

    type: Literal["input"]
    tick: int = Field(ge=0)
    device: Literal["analog", "mouse", "touch", "gamepad", "keyboard"] = "analog"
    steer: Unit | None = None
    throttle: Unit | None = None
    left: bool = False
    right: bool = False
    up: bool = False
    down: bool = False
    intervene: bool = False

    @model_validator(mode="after")
    def _one_form(self) -> Input:
        keys = {"left", "right", "up", "down"} & self.model_fields_set
        if self.device == "keyboard" and (self.steer is not None or self.throttle is not None):
            raise ValueError("a keyboard sends its held keys (left, right, up, down), not "
                             "steer / throttle values")
        if self.device != "keyboard" and keys:
            raise ValueError(f"{', '.join(sorted(keys))}: keys are sent with device "
                             f"\"keyboard\"; {self.device} input sends steer / throttle values")
        return self

    @property
    def keys(self) -> int | None:
        """The held keys' code for a keyboard (``learning.device.key_code``), else None."""
        if self.device != "keyboard":
            return None
        return key_code(self.left, self.right, self.up, self.down)


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
