"""Where the dashboard is: Horizon at /horizon/ on the controller's public address (pure)."""

from __future__ import annotations

from stackwright.inventory import Inventory
from stackwright.release_table import ALL

WEBROOT = "/horizon/"


def has_dashboard(inventory: Inventory) -> bool:
    return ALL[inventory.release].dashboard


def dashboard_url(inventory: Inventory) -> str:
    """Where users open it: https through the TLS front, unless the inventory turns TLS off."""
    return f"{inventory.public_url_base}{WEBROOT}"


def login_url(inventory: Inventory) -> str:
    return f"{dashboard_url(inventory)}auth/login/"
