"""TEST-ONLY: a FastAPI WebSocket endpoint (see test_asgi_websocket.py).

No ``from __future__ import annotations`` here: FastAPI reads the parameters' annotations
at run time to tell the WebSocket and the path parameter apart.
"""

from fastapi import FastAPI, WebSocket

app = FastAPI()


@app.websocket("/ws/{name}")
async def hello(websocket: WebSocket, name: str) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_json({"name": name, "text": text})
    await websocket.close(code=4001, reason="done")
