"""TEST-ONLY: Channels consumers, each a way an app uses the websocket scope.

- ``EchoConsumer``: the synchronous ``WebsocketConsumer`` (its handlers run in a thread).
- ``AsyncEchoConsumer``: ``AsyncWebsocketConsumer``, with a URL parameter, a subprotocol
  and a close code of its own.
- ``RefusingConsumer``: closes before accepting, which the handshake answers with 403.
- ``RoomConsumer``: a broadcast through the channel layer's group (a chat room).
"""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer


class EchoConsumer(WebsocketConsumer):
    def connect(self) -> None:
        self.accept()

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is not None:
            self.send(text_data=text_data)
        else:
            self.send(bytes_data=bytes_data)


class AsyncEchoConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        offered = self.scope["subprotocols"]
        await self.accept("chat" if "chat" in offered else None)
        await self.send(text_data="hello " + self.scope["url_route"]["kwargs"]["name"])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "bye":
            await self.close(code=4000)
        elif text_data is not None:
            await self.send(text_data=text_data.upper())


class RefusingConsumer(WebsocketConsumer):
    def connect(self) -> None:
        self.close()


class RoomConsumer(AsyncWebsocketConsumer):
    group = "room"

    async def connect(self) -> None:
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send(self.group, {"type": "chat.message", "text": text_data})

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])
