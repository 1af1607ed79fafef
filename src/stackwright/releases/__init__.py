"""Release knowledge: what each OpenStack release installs, writes and runs.

Each release is a subpackage (`zed`, `grizzly`) exposing `RELEASE`, a `Release` object.
Importing this package stays cheap; a release's module is imported only when used.
"""

from __future__ import annotations

KNOWN_RELEASES: tuple[str, ...] = ("zed", "grizzly")
