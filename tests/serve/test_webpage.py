"""The web page in a real headless Chromium (Debian's `chromium`), driven over the DevTools
protocol: pick a photo, pick a style by clicking its preview, press the button, and the painted
result must appear next to the original with the time taken and a download link."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import Server

pytestmark = pytest.mark.slow   # a real server process (and, for the page, a browser)

CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser"), "/usr/bin/chromium") if p and Path(p).exists()),
                None)


class Browser:
    """A minimal Chrome DevTools Protocol client: one page, commands and event waiting."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 860):
        import websocket
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "DOM"):
            self.send(f"{domain}.enable")

    def send(self, method: str, **params):
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def eval(self, expression: str):
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.1)
        status = self.eval("document.getElementById('status').textContent")
        raise AssertionError(f"timed out waiting for {expression}; page status: {status!r}")

    def click(self, selector: str):
        """A real mouse click at the element's centre (not element.click())."""
        box = self.eval(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                        ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def set_file(self, selector: str, path: Path):
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.send("DOM.setFileInputFiles", nodeId=node, files=[str(path)])

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self):
        with contextlib.suppress(Exception):  # the browser may already be gone
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture()
def browser(tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed")
    pytest.importorskip("websocket", reason="websocket-client (the dev extra) is not installed")
    profile = tmp_path / "profile"
    profile.mkdir()
    b = Browser(profile)
    yield b
    b.close()


def open_page_with_photo(browser, server, data, tmp_path, before_photo=lambda: None) -> None:
    """Open the page, wait for its two styles, run `before_photo`, then choose a real photo."""
    photo = tmp_path / "golden_gate.jpg"
    shutil.copy(data / "content" / "golden_gate.jpg", photo)
    browser.send("Page.navigate", url=server.url + "/")
    assert browser.wait_for("document.querySelectorAll('.style').length") == 2
    before_photo()
    browser.set_file("#file", photo)
    browser.wait_for("document.getElementById('original').naturalWidth > 0")


def test_upload_pick_style_and_see_result(browser, style_models, data, tmp_path):
    server = Server(style_models)
    try:
        def previews_load_and_nothing_to_paint_yet():
            browser.wait_for("[...document.querySelectorAll('.style img')]"
                             ".every(i => i.complete && i.naturalWidth > 0)")
            assert browser.eval("document.getElementById('go').disabled") is True
        open_page_with_photo(browser, server, data, tmp_path, previews_load_and_nothing_to_paint_yet)
        browser.click(".style[data-style='beta']")
        assert browser.eval("document.querySelector(\".style[data-style='beta']\").getAttribute('aria-checked')") \
            == "true"
        browser.eval("document.getElementById('size').value = '512'")
        browser.click("#go")
        browser.wait_for("!document.getElementById('download').hidden && "
                         "document.getElementById('result').naturalWidth > 0", timeout=120)
        width = browser.eval("document.getElementById('result').naturalWidth")
        assert width == 512, width
        timing = browser.eval("document.getElementById('timing').textContent")
        assert timing.strip().endswith(")") and " s" in timing, timing
        download = browser.eval("document.getElementById('download').download")
        assert download == "golden_gate-beta.jpg", download
        assert browser.eval("document.getElementById('status').className") == ""
        shot = browser.screenshot(tmp_path / "webpage.png")
        if os.environ.get("IMPASTO_SCREENSHOT"):
            shutil.copy(shot, os.environ["IMPASTO_SCREENSHOT"])
        assert shot.stat().st_size > 10_000
        errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
        assert not errors, errors

        # A bad file shows the server's error message on the page instead of a result.
        bad = tmp_path / "notes.png"
        bad.write_text("not an image")
        browser.set_file("#file", bad)
        browser.click("#go")
        browser.wait_for("document.getElementById('status').className === 'error'")
        assert "not an image" in browser.eval("document.getElementById('status').textContent")
    finally:
        server.stop()


def test_blend_sliders_for_a_multi_style_model(browser, multi_models, data, tmp_path):
    """A multi-style model shows one slider per style inside it; the mix set there is what the
    server paints (its X-Blend header comes back on the page); all at zero disables the button."""
    server = Server(multi_models)
    try:
        def no_sliders_for_the_first_style():   # alpha: one style
            assert browser.eval("document.getElementById('blend').hidden") is True
        open_page_with_photo(browser, server, data, tmp_path, no_sliders_for_the_first_style)
        browser.click(".style[data-style='duo']")
        assert browser.eval("document.getElementById('blend').hidden") is False
        names = browser.eval("[...document.querySelectorAll('#blend-sliders input')].map(s => s.dataset.style)")
        assert names == ["red", "blue"]
        # move the sliders with the keyboard, as a person without a mouse would
        browser.eval("document.querySelector('#blend-sliders input[data-style=red]').focus()")
        for _ in range(10):   # red 1.0 -> 0.5
            browser.send("Input.dispatchKeyEvent", type="keyDown", key="ArrowLeft", code="ArrowLeft",
                         windowsVirtualKeyCode=37)
            browser.send("Input.dispatchKeyEvent", type="keyUp", key="ArrowLeft", code="ArrowLeft",
                         windowsVirtualKeyCode=37)
        browser.eval("(() => { const s = document.querySelector('#blend-sliders input[data-style=blue]');"
                     " s.value = '0.5'; s.dispatchEvent(new Event('input')); })()")
        shares = browser.eval("[...document.querySelectorAll('#blend-sliders output')].map(o => o.textContent)")
        assert shares == ["50%", "50%"], shares
        browser.eval("document.getElementById('size').value = '512'")
        browser.click("#go")
        browser.wait_for("!document.getElementById('download').hidden && "
                         "document.getElementById('painted').textContent.length > 0", timeout=120)
        assert browser.eval("document.getElementById('painted').textContent") == "blend red:0.50, blue:0.50"
        assert browser.eval("document.getElementById('status').className") == ""
        # every weight at zero: nothing to paint, and the page says why
        browser.eval("for (const s of document.querySelectorAll('#blend-sliders input')) "
                     "{ s.value = '0'; s.dispatchEvent(new Event('input')); }")
        assert browser.eval("document.getElementById('go').disabled") is True
        assert "at least one" in browser.eval("document.getElementById('blend-hint').textContent")
        browser.click(".style[data-style='alpha']")
        assert browser.eval("document.getElementById('blend').hidden") is True
        assert browser.eval("document.getElementById('go').disabled") is False
        errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
        assert not errors, errors
    finally:
        server.stop()
