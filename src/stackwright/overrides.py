"""The shape of user overrides of INI files (`overrides:` in the inventory), shared by the model
and the renderer that lays them over rendered files.

    {"/etc/nova/nova.conf": {"DEFAULT": {"debug": True}}}
"""

from __future__ import annotations

OptionValue = str | int | float | bool
Overrides = dict[str, dict[str, dict[str, OptionValue]]]
