"""`stackwright lab ...` commands."""

from __future__ import annotations

import typer

lab_app = typer.Typer(help="Throwaway Debian hosts on this machine, with the inventory's addresses.")
