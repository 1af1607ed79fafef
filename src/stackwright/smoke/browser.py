"""verify --smoke --ui: the dashboard and the VM console, as a person meets them, in a real browser.

Debian's chromium, driven headless by Selenium through Debian's chromium-driver (both from the
operator's apt; nothing is downloaded), logs into Horizon as the smoke user, finds the smoke server
ACTIVE under Project → Instances, opens its Console tab and reads the noVNC canvas with Debian's
tesseract-ocr until the line the smoke guest printed on its screen shows. Screenshots of the login
page, the instance list and the console are kept with the run's log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from stackwright.checks.verify import http_get
from stackwright.polling import Deadline, poll

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TESSERACT = "tesseract"
PACKAGES = "chromium chromium-driver tesseract-ocr"
PAGE_TIMEOUT_S = 60.0
CONSOLE_TIMEOUT_S = 90.0
# The canvas is drawn at twice its size: tesseract misreads VGA's 8x16 font at 1:1.
SCALE = 2
# vnc_lite.html's status line once the connection is over (it does not reconnect).
CLOSED = ("Disconnected", "Something went wrong", "Failed")

T = TypeVar("T")


class UiFailure(Exception):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass
class UiReport:
    ok: bool = False
    error: str | None = None
    hint: str | None = None
    login_s: float | None = None
    instances_s: float | None = None
    console_s: float | None = None  # from opening the login page to the marker read on the canvas
    console_text: str = ""
    screenshots: list[Path] = field(default_factory=list)


def missing_tools() -> list[str]:
    """What the browser check needs on this machine and does not find."""
    found = [Path(CHROMIUM).exists(), Path(CHROMEDRIVER).exists(), shutil.which(TESSERACT) is not None]
    return [name for name, ok in zip(("chromium", "chromedriver", "tesseract"), found, strict=True) if not ok]


def read_text(png: bytes) -> str:
    """OCR of a screenshot. tesseract's own CLI: pytesseract would add itself and Pillow around
    this one call."""
    done = subprocess.run(
        [TESSERACT, "stdin", "stdout", "--psm", "6"], input=png, capture_output=True, timeout=60, check=False
    )
    return done.stdout.decode(errors="replace")


def marker_seen(text: str, marker: str) -> bool:
    """`marker` in OCR text, ignoring the spaces and case OCR gets wrong on a console font."""
    squeeze = re.compile(r"\s+")
    return squeeze.sub("", marker).lower() in squeeze.sub("", text).lower()


@contextmanager
def chromium(spki: str | None = None) -> Iterator[WebDriver]:
    """Headless chromium; with `spki`, the one certificate whose public key hashes to it (the TLS
    front's, from the cloud's private CA) is trusted, and no other certificate error is ignored."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Selenium Manager would try to download a driver if it could not use ours.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root, and a container without user namespaces for the sandbox
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--force-device-scale-factor={SCALE}",
        "--no-proxy-server",  # the lab's addresses must not go through an environment's proxy
        *((f"--ignore-certificate-errors-spki-list={spki}",) if spki else ()),
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(what: Callable[[], T | None], seconds: float, every_s: float = 0.25) -> T | None:
    return poll(what, within_s=seconds, every_s=every_s, done=lambda found: found is not None)


def _one(driver: WebDriver, css: str) -> WebElement | None:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0] if found else None


def _shot(driver: WebDriver, out_dir: Path, name: str, report: UiReport) -> None:
    path = out_dir / f"{name}.png"
    path.write_bytes(driver.get_screenshot_as_png())
    path.chmod(0o600)
    report.screenshots.append(path)


def check_console(
    dashboard: str,
    username: str,
    password: str,
    server_id: str,
    server_name: str,
    marker: str,
    out_dir: Path,
    *,
    console_timeout: float = CONSOLE_TIMEOUT_S,
    say: Callable[[str], None] = lambda _m: None,
    trust: tuple[str | None, Path | None] = (None, None),
) -> UiReport:
    """Log in at `dashboard` (its web root URL), find the server ACTIVE, read `marker` off its console."""
    report = UiReport()
    missing = missing_tools()
    if missing:
        report.error = f"the browser check needs {', '.join(missing)} on this machine"
        report.hint = f"install Debian's {PACKAGES} (setup.sh does, as root)"
        return report
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    started = time.monotonic()
    try:
        with chromium(trust[0]) as driver:
            say("dashboard: login …")
            _login(driver, dashboard, username, password, out_dir, report)
            report.login_s = time.monotonic() - started
            say("dashboard: Project → Instances …")
            _instance_active(driver, dashboard, server_name, out_dir, report)
            report.instances_s = time.monotonic() - started
            say("dashboard: the Console tab …")
            _console_shows(driver, dashboard, server_id, marker, console_timeout, out_dir, report, trust[1])
            report.console_s = time.monotonic() - started
        report.ok = True
    except UiFailure as exc:
        report.error, report.hint = exc.message, exc.hint
    except Exception as exc:  # a browser that died, a driver that does not match chromium
        report.error = f"the browser failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
        report.hint = f"chromium and chromium-driver must be the same version (apt install {PACKAGES})"
    return report


def _login(
    driver: WebDriver, dashboard: str, username: str, password: str, out_dir: Path, report: UiReport
) -> None:
    url = f"{dashboard}auth/login/"
    try:
        driver.get(url)
    except Exception as exc:
        raise UiFailure(
            f"the dashboard's login page {url} did not load: {str(exc).splitlines()[0][:160]}",
            "on the controller: `systemctl status apache2`; doctor reads the dashboard's error log",
        ) from exc
    form = _wait(lambda: _one(driver, "#id_username"), PAGE_TIMEOUT_S)
    if form is None:
        _shot(driver, out_dir, "login", report)
        raise UiFailure(
            f"{url} shows no login form (title {driver.title!r})",
            "doctor names the dashboard's last errors (its error log on the controller)",
        )
    _shot(driver, out_dir, "login", report)
    form.send_keys(username)
    password_field = _one(driver, "#id_password")
    assert password_field is not None
    password_field.send_keys(password)
    password_field.submit()
    landed = _wait(lambda: True if "/auth/login" not in driver.current_url else None, PAGE_TIMEOUT_S)
    if landed is None:
        alert = _one(driver, ".alert-danger, .help-block, .error")
        why = alert.text.strip() if alert is not None else "no message"
        raise UiFailure(
            f"login as {username} did not leave the login page ({why})",
            "the dashboard cannot reach Keystone or its sessions' memcached: doctor on the controller",
        )


def _instance_active(
    driver: WebDriver, dashboard: str, server_name: str, out_dir: Path, report: UiReport
) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{dashboard}project/instances/")

    def row_status() -> str | None:
        for row in driver.find_elements(By.CSS_SELECTOR, "table#instances tbody tr"):
            if server_name in row.text:
                cell = row.find_elements(By.CSS_SELECTOR, "td.status_up, td.status_down, td.status_unknown")
                return (cell[0].text if cell else row.text).strip()
        return None

    status = _wait(lambda: s if (s := row_status()) and "Active" in s else None, PAGE_TIMEOUT_S, every_s=1.0)
    _shot(driver, out_dir, "instances", report)
    if status is None:
        raise UiFailure(
            f"Project → Instances shows no ACTIVE {server_name} (row: {row_status()!r})",
            "`stackwright verify` for nova's state; the dashboard lists what nova-api returns",
        )


def _console_shows(
    driver: WebDriver,
    dashboard: str,
    server_id: str,
    marker: str,
    console_timeout: float,
    out_dir: Path,
    report: UiReport,
    cafile: Path | None,
) -> None:
    driver.get(f"{dashboard}project/instances/{server_id}/?tab=instance_details__console")
    frame = _wait(lambda: _one(driver, "iframe#console_embed"), PAGE_TIMEOUT_S)
    if frame is None:
        _shot(driver, out_dir, "console", report)
        raise UiFailure(
            "the instance's Console tab shows no console frame",
            "nova-api made no console URL: the dashboard's CONSOLE_TYPE and nova's [vnc] section",
        )
    console_url = frame.get_attribute("src") or ""
    # A page that cannot load leaves the frame blank (chromium's error page is not readable from
    # here): ask for it the way the browser does, to name the cause at once.
    status_code, error = http_get(console_url, cafile=cafile)
    if status_code != 200:
        _shot(driver, out_dir, "console", report)
        raise UiFailure(
            f"the console page {console_url.split('?')[0]} did not load ({error or f'HTTP {status_code}'})",
            "nova-novncproxy on the controller does not answer: `systemctl status nova-novncproxy`",
        )
    driver.switch_to.frame(frame)
    deadline = Deadline(console_timeout)

    def status_text() -> str:
        bar = _one(driver, "#status, #noVNC_status")
        return bar.text.strip() if bar is not None else ""

    def look() -> tuple[bool, bool]:
        """(marker seen, connection given up: noVNC does not reconnect by itself)."""
        if any(word in status_text() for word in CLOSED):
            return False, True
        canvas = _one(driver, "canvas")
        if canvas is None or canvas.size["width"] < 100:
            return False, False
        report.console_text = read_text(canvas.screenshot_as_png)
        return marker_seen(report.console_text, marker), False

    seen, _ = poll(look, within_s=deadline, every_s=2.0, done=lambda r: r[0] or r[1])
    status = status_text()
    driver.switch_to.default_content()
    _shot(driver, out_dir, "console", report)
    if not seen:
        said = " ".join(report.console_text.split())[:120] or "nothing readable"
        waited = "" if any(word in status for word in CLOSED) else f" within {console_timeout:.0f} s"
        raise UiFailure(
            f"the console did not show {marker!r}{waited} "
            f"(noVNC: {status or 'no status'}; the canvas reads: {said})",
            "the proxy cannot reach the compute node's VNC server: its `[vnc] server_proxyclient_address` "
            "must be an address of that node the controller reaches (doctor checks it)",
        )
