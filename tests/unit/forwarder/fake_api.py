"""A canned HTTP API on a real loopback socket, for the API clients' unit tests (the transport is aiohttp, so the
requests go over the wire): routes answer what a test scripts (httpx.Response objects as canned answers, a list
of them in turn, a function of the request, or LOST: the connection is dropped with no answer) and record every
request they got, as an httpx.Request, for the test to inspect."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

LOST = object()  # drop the connection once the request has arrived: the answer is lost
Answer = httpx.Response | object
Effect = Answer | list[Answer] | Callable[[httpx.Request], Answer]


@dataclass(frozen=True, slots=True)
class Call:
    request: httpx.Request


class Calls(list[Call]):
    @property
    def last(self) -> Call:
        return self[-1]


@dataclass
class Route:
    calls: Calls = field(default_factory=Calls)
    _effect: Effect | None = None

    def mock(self, return_value: Answer | None = None, side_effect: Any = None) -> Route:
        self._effect = list(side_effect) if isinstance(side_effect, list) else side_effect or return_value
        return self

    def answer(self, request: httpx.Request) -> Answer:
        effect = self._effect
        assert effect is not None, "route called but not scripted"
        if callable(effect):
            effect = effect(request)
        answer = effect.pop(0) if isinstance(effect, list) else effect
        self.calls.append(Call(request))  # after the answer: a function of the request sees the calls before it
        return answer


class FakeApi:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.base_url = ""

    def route(self, method: str, path: str) -> Route:
        return self.routes.setdefault((method, path), Route())

    def get(self, path: str) -> Route:
        return self.route("GET", path)

    def post(self, path: str) -> Route:
        return self.route("POST", path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        recorded = httpx.Request(
            request.method, str(request.url), headers=list(request.headers.items()), content=await request.read()
        )
        route = self.routes.get((request.method, request.path))
        if route is None:
            return web.Response(status=599, text=f"no route for {request.method} {request.path}")
        answer = route.answer(recorded)
        if answer is LOST:
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        assert isinstance(answer, httpx.Response)
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
        return web.Response(status=answer.status_code, body=answer.content, headers=headers)
