"""A real browser for the HTML report's tests: Debian's `chromium`, headless, from its command line.

`open_page(html, name)` opens a report the way a reviewer would and returns
what the browser made of it (`Page`):

- a screenshot of the whole page as written (the report holds no script, and
  its Content-Security-Policy forbids any), kept under `out/test-artifacts/` (gitignored; set
  MLREPRO_TEST_ARTIFACTS to keep them elsewhere, e.g. a CI artifact folder)
  next to a copy of the HTML;
- the DOM after load (`--dump-dom`);
- for each CSS selector asked about, the laid-out boxes of the matching
  elements (size, display, visibility), and the smallest rendered text size on
  the page. These are measured by a small script added to a *copy* of the page
  (its Content-Security-Policy taken out so the script may run) that writes
  them into the DOM before it is dumped, so "present" means "in the DOM" and
  "visible" means "laid out with a size, not hidden".

`require_chromium()` skips locally when chromium is missing and fails under
CI=true (`harness.plugin.missing_prerequisite`, like the engine; `make test`
installs it: scripts/ensure-commands.sh).
Every browser runs in its own process group with a throwaway profile, and the
group is killed if it outlives its timeout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any, Sequence

from harness.plugin import missing_prerequisite

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("MLREPRO_TEST_ARTIFACTS") or ROOT / "out" / "test-artifacts")
WIDTH = 1280
MAX_HEIGHT = 16000  # a screenshot taller than this is cut (Chromium's own limit is near 16384)
TIMEOUT = 120.0
_PROBE_ID = "mlrepro-browser-probe"
_CSP = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>', re.IGNORECASE)

# Runs in the copy only, after the page is parsed: measures, then writes JSON into the DOM for --dump-dom.
_PROBE = """<script>
(function () {
  var selectors = %s;
  function box(el) {
    var r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return {width: r.width, height: r.height, display: s.display, visibility: s.visibility, opacity: s.opacity};
  }
  function rendered(el) {  // text size in CSS px as drawn: SVG text is scaled by its viewBox
    var size = parseFloat(getComputedStyle(el).fontSize);
    if (el instanceof SVGElement && el.getScreenCTM) { var m = el.getScreenCTM(); if (m) size *= Math.sqrt(m.a * m.a + m.b * m.b); }
    return size;
  }
  var result = {height: document.documentElement.scrollHeight, selectors: {}, min_text_px: null, smallest: null};
  selectors.forEach(function (sel) { result.selectors[sel] = Array.prototype.map.call(document.querySelectorAll(sel), box); });
  Array.prototype.forEach.call(document.body.querySelectorAll('*'), function (el) {
    var own = Array.prototype.some.call(el.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim(); });
    if (!own || el.closest('title, desc, style, script') || box(el).display === 'none') return;
    var px = rendered(el);
    if (result.min_text_px === null || px < result.min_text_px) { result.min_text_px = px; result.smallest = el.tagName + ': ' + el.textContent.trim().slice(0, 60); }
  });
  var pre = document.createElement('pre'); pre.id = '%s'; pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
})();
</script>"""


@dataclass(frozen=True)
class Page:
    """What the browser showed: the DOM after load, the screenshot, and the measured boxes."""

    dom: str
    screenshot: Path
    height: int
    boxes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    min_text_px: float | None = None
    smallest: str | None = None

    def visible(self, selector: str) -> bool:
        """At least one element matches, and every match is laid out with a size and not hidden."""
        found = self.boxes.get(selector)
        if found is None:
            raise KeyError(f"{selector!r} was not measured; pass it to open_page(selectors=...)")
        return bool(found) and all(b["width"] > 0 and b["height"] > 0 and b["display"] != "none"
                                   and b["visibility"] == "visible" and float(b["opacity"]) > 0 for b in found)


def require_chromium() -> str:
    """The chromium executable, or skip (locally) / fail (CI=true) with the reason."""
    found = shutil.which("chromium")
    if found is None:
        missing_prerequisite("chromium is not installed (scripts/ensure-commands.sh installs it; make test runs it)")
    return found


def _chromium(args: Sequence[str]) -> str:
    """Run headless chromium with a throwaway profile; its stdout. The process group goes on timeout."""
    browser = require_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                   "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
                   # Nothing on the page may need the network: any request it made would go nowhere.
                   "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>", *args]
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError(f"chromium did not finish within {TIMEOUT:.0f} s: {' '.join(args)}") from None
        finally:
            try:  # renderer and zygote children share the group; none may outlive the call
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if proc.returncode != 0:
        raise AssertionError(f"chromium exited {proc.returncode} for {' '.join(args)}:\n{stderr[-3000:]}")
    return stdout


def open_page(html: Path, name: str, *, selectors: Sequence[str] = ()) -> Page:
    """Open `html` in headless Chromium; keep `<name>.png` and `<name>.html` under ARTIFACTS; measure `selectors`."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kept = ARTIFACTS / f"{name}.html"
    shutil.copyfile(html, kept)
    text = html.read_text(encoding="utf-8")
    assert text.count("</body>") == 1, f"{html}: expected one </body>"
    probe = _PROBE % (json.dumps(list(selectors)), _PROBE_ID)
    with tempfile.TemporaryDirectory(prefix="html-probe-") as tmp:
        copy = Path(tmp) / "page.html"
        copy.write_text(_CSP.sub("", text).replace("</body>", probe + "</body>"), encoding="utf-8")
        dom = _chromium(["--dump-dom", copy.as_uri()])
    start = dom.find(f'<pre id="{_PROBE_ID}">')
    assert start >= 0, f"the browser's DOM has no measurements; it starts: {dom[:500]!r}"
    end = dom.index("</pre>", start)
    measured = json.loads(unescape(dom[start + len(f'<pre id="{_PROBE_ID}">'):end]))
    height = int(measured["height"])
    screenshot = ARTIFACTS / f"{name}.png"
    screenshot.unlink(missing_ok=True)
    # The report itself, untouched, in a window as tall as its content.
    _chromium([f"--window-size={WIDTH},{min(max(height, 600), MAX_HEIGHT)}", f"--screenshot={screenshot}", kept.resolve().as_uri()])
    assert screenshot.is_file() and screenshot.stat().st_size > 0, f"chromium wrote no screenshot to {screenshot}"
    print(f"browser: {name}: screenshot {screenshot}, page {kept}")
    return Page(dom=(dom[:start] + dom[end + len("</pre>"):]).replace(probe, ""), screenshot=screenshot, height=height,
                boxes=measured["selectors"], min_text_px=measured["min_text_px"], smallest=measured["smallest"])


__all__ = ["ARTIFACTS", "Page", "open_page", "require_chromium"]
