"""The shape of user overrides of INI files (`overrides:` in the inventory), shared by the model
and the renderer that lays them over rendered files.

    {"/etc/nova/nova.conf": {"DEFAULT": {"debug": True}}}
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from stackwright.allowlists import FilePath, OptionName, SectionName, option_value

OptionValue = str | int | float | bool
Overrides = dict[
    FilePath, dict[SectionName, dict[OptionName, Annotated[OptionValue, AfterValidator(option_value)]]]
]
