"""A headless Chromium driven over the DevTools protocol (aiohttp's websocket client; nothing else
to install): open a page, read it with JavaScript, take a screenshot. For the live page's tests."""

from __future__ import annotations

import asyncio
import base64
import itertools
import shutil
from pathlib import Path
from typing import Any

import aiohttp

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, CANDIDATES) if path), None)


class Browser:
    """``async with Browser(binary, folder) as browser: await browser.open(url) ...``"""

    def __init__(self, binary: str, folder: Path, size: tuple[int, int] = (1440, 900)) -> None:
        self.binary, self.folder, self.size = binary, folder, size
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Browser:
        self.process = await asyncio.create_subprocess_exec(
            self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--remote-debugging-port=0", f"--user-data-dir={self.folder / 'chromium-profile'}",
            f"--window-size={self.size[0]},{self.size[1]}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        port = None
        while port is None:  # Chromium says where its DevTools listen on stderr
            line = await asyncio.wait_for(self.process.stderr.readline(), 60)
            if not line:
                raise RuntimeError("chromium exited before its DevTools started")
            if b"DevTools listening on ws://" in line:
                port = int(line.split(b"ws://", 1)[1].split(b"/", 1)[0].rsplit(b":", 1)[1])
        self._drain = asyncio.create_task(self._read_rest())
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{port}/json/list") as answer:
            page = next(t for t in await answer.json() if t["type"] == "page")
        self.socket = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Page.enable")
        return self

    async def _read_rest(self) -> None:
        while await self.process.stderr.readline():
            pass

    async def __aexit__(self, *exc: object) -> None:
        await self.socket.close()
        await self.session.close()
        self.process.kill()
        await self.process.wait()
        self._drain.cancel()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command and its result (events that arrive meanwhile are dropped)."""
        number = next(self._ids)
        await self.socket.send_json({"id": number, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.socket.receive_json(), 60)
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def open(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def value(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def text(self, element_id: str) -> str:
        return await self.value(f"(document.getElementById({element_id!r}) || {{}}).textContent || ''")

    async def number(self, element_id: str) -> float:
        text = (await self.text(element_id)).replace(",", "").split(" ")[0]
        return float(text) if text not in ("", "-") else float("nan")

    async def screenshot(self, path: Path) -> Path:
        result = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(result["data"]))
        return path
