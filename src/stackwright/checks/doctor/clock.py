"""Clocks: every host against the controller's."""

from __future__ import annotations

from stackwright.checks.doctor.base import Context, Row, check, ok

SKEW_WARN_S = 2.0
SKEW_FAIL_S = 30.0  # tokens, RabbitMQ heartbeats and nova's service_down_time (60 s) suffer earlier


def skew_rows(offsets: dict[str, float | None], controller: str) -> list[Row]:
    """Rows from each host's clock offset against this machine (seconds); the controller is the reference."""
    reference = offsets.get(controller)
    rows: list[Row] = []
    for host, offset in offsets.items():
        if host == controller:
            continue
        if offset is None or reference is None:
            rows.append(Row("clock-skew", host, "skip", "no clock reading from this host or the controller"))
            continue
        skew = offset - reference
        text = f"{skew:+.1f} s from {controller}'s clock"
        if abs(skew) > SKEW_FAIL_S:
            rows.append(
                Row(
                    "clock-skew",
                    host,
                    "fail",
                    f"clock {text} (tolerance {SKEW_FAIL_S:.0f} s): tokens look expired or not yet valid, "
                    "services look down",
                    "sync the clocks: chrony on every host, pointing at the same servers "
                    "(`chronyc tracking`)",
                )
            )
        elif abs(skew) > SKEW_WARN_S:
            rows.append(Row("clock-skew", host, "warn", f"clock {text}", "check chrony (`chronyc tracking`)"))
        else:
            rows.append(ok("clock-skew", host, f"clock {text}"))
    return rows


@check("clock-skew")
def clock_skew(ctx: Context) -> list[Row]:
    """Services flap between `up` and `down`, Keystone tokens are rejected as expired right after
    they were issued, RabbitMQ connections drop on missed heartbeats: a host's clock is off.

    Each host's clock is read in the same round trip as preflight's facts and placed within the
    round trip's bounds on this machine; the difference to the controller's must stay within
    30 s (a warning above 2 s). Fix: chrony on every host."""
    offsets = {h: ctx.data[h].clock_offset for h in ctx.examined()}
    controller = ctx.inventory.controller_name
    if controller not in offsets:
        return []
    return skew_rows(offsets, controller)
