"""The base of every typed configuration section: unknown keys are errors, assignments are validated."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A strict pydantic model: a misspelt key is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
