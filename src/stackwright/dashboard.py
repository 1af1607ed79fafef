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


def internal_login_url(inventory: Inventory) -> str:
    """The login page as Apache serves it on the controller (what apply waits for there): on
    loopback behind a front that serves the management address too (tls.internal), on management
    behind the front, else on the public address."""
    controller = inventory.controller
    if inventory.tls.enabled and inventory.tls.internal:
        address = "localhost"  # one of the dashboard's ALLOWED_HOSTS
    elif inventory.tls.enabled:
        address = str(controller.management)
    else:
        address = str(controller.external or controller.management)
    return f"http://{address}{WEBROOT}auth/login/"


def login_url(inventory: Inventory) -> str:
    return f"{dashboard_url(inventory)}auth/login/"
