"""Where the dashboard is: Horizon at /horizon/ on the controller's public address (pure)."""

from __future__ import annotations

from stackwright.inventory import Inventory
from stackwright.release_table import ALL

WEBROOT = "/horizon/"


def has_dashboard(inventory: Inventory) -> bool:
    return ALL[inventory.release].dashboard


def dashboard_url(inventory: Inventory) -> str:
    controller = inventory.controller
    return f"http://{controller.external or controller.management}{WEBROOT}"


def login_url(inventory: Inventory) -> str:
    return f"{dashboard_url(inventory)}auth/login/"
