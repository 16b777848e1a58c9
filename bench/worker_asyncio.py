"""Contender 4: the reference, asyncio + `websockets`, tuned as far as plain Python goes.

Persistent sessions: one connection per host, `core.set_options` (new-style
jobs: a job's reply comes when it ends) and `auth.login_ex` once, then a reader
task per connection that resolves futures by id. A fan-out round sends every
request from one coroutine and awaits the futures (no task per call), with
orjson and a bare counter for ids: the cheapest shape known for this stack.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.measure import CALL_METHOD, JOB_METHOD, JOB_PARAMS, Rounds, emit, load_spec, raise_nofile, rss_kib
from bench.sims import PASSWORD_ENV


class Session:
    """One persistent connection; calls resolve by id from the reader task."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)
        self.reader = asyncio.get_running_loop().create_task(self._read())

    def start(self, method: str, params: list[Any]) -> tuple[asyncio.Future[Any], bytes]:
        call_id = next(self.ids)
        future = self.pending[call_id] = asyncio.get_running_loop().create_future()
        frame = orjson.dumps({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params})
        return future, frame

    async def call(self, method: str, params: list[Any]) -> Any:
        future, frame = self.start(method, params)
        await self.ws.send(frame, text=True)
        return await future

    async def _read(self) -> None:
        async for text in self.ws:
            message = orjson.loads(text)
            future = self.pending.pop(message.get("id"), None)
            if future is None or future.done():
                continue
            if "error" in message:
                future.set_exception(RuntimeError(message["error"]))
            else:
                future.set_result(message["result"])


def is_ebusy(error: BaseException) -> bool:
    """The server's rate-limit refusal (errno 16, EBUSY)."""
    return "EBUSY" in str(error)


class Reference:
    """The whole fleet; counts logins and EBUSY refusals like fleetclt's figures."""

    def __init__(self, hosts: list[dict[str, str]], max_connecting: int) -> None:
        self.hosts, self.sessions = hosts, []  # type: list[dict[str, str]], list[Session]
        self.gate = asyncio.Semaphore(max_connecting)
        self.logins = self.ebusy = 0

    async def open_one(self, uri: str) -> Session:
        async with self.gate:
            ws = await connect(uri, compression=None, proxy=None, max_size=2 ** 24, ping_interval=25)
            session = Session(ws)
            await session.call("core.set_options", [{"legacy_jobs": False}])
            await self.login(session)
            return session

    async def login(self, session: Session) -> None:
        data = {"mechanism": "PASSWORD_PLAIN", "username": "admin", "password": os.environ[PASSWORD_ENV]}
        try:
            reply = await session.call("auth.login_ex", [data])
        except RuntimeError as exc:
            self.ebusy += is_ebusy(exc)
            raise
        self.logins += 1
        if reply.get("response_type") != "SUCCESS":
            raise RuntimeError(f"login refused: {reply}")

    async def open_all(self) -> None:
        self.sessions = list(await asyncio.gather(*(self.open_one(h["uri"]) for h in self.hosts)))

    async def fan_out(self, method: str, params: list[Any]) -> int:
        """Pipelined: send every request, then await them all; returns the failures."""
        futures = []
        for session in self.sessions:
            future, frame = session.start(method, params)
            futures.append(future)
            await session.ws.send(frame, text=True)
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        return sum(isinstance(o, BaseException) for o in outcomes)

    async def close(self) -> None:
        await asyncio.gather(*(s.ws.close() for s in self.sessions), return_exceptions=True)


async def timed_rounds(ref: Reference, spec: dict[str, Any]) -> Rounds:
    """Rounds.run, but each round awaited (process CPU includes the event loop)."""
    rounds = Rounds(len(ref.hosts), spec["sim_pids"])
    for _ in range(spec["warmup"]):
        await ref.fan_out(CALL_METHOD, [])
    rounds.begin()
    for _ in range(spec["rounds"]):
        started = time.perf_counter()
        rounds.failures += await ref.fan_out(CALL_METHOD, [])
        rounds.times.append(time.perf_counter() - started)
    rounds.end()
    return rounds


async def saturation(ref: Reference, depth: int, rounds: int) -> float:
    started = time.perf_counter()

    async def driver() -> None:
        for _ in range(rounds):
            await ref.fan_out(CALL_METHOD, [])
    await asyncio.gather(*(driver() for _ in range(depth)))
    return round(len(ref.hosts) * depth * rounds / (time.perf_counter() - started), 1)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    ref = Reference(spec["hosts"], spec["max_connecting"])
    count = len(ref.hosts)
    rss0, cpu0, started = rss_kib(), time.process_time(), time.perf_counter()
    await ref.open_all()
    out: dict[str, Any] = {"connect_login_s": round(time.perf_counter() - started, 3), "connect_failures": 0,
                           "connect_cpu_us_per_host": round((time.process_time() - cpu0) / count * 1e6),
                           "rss_kib_per_session": round((rss_kib() - rss0) / count, 1)}
    out.update((await timed_rounds(ref, spec)).figures())
    if spec.get("saturation_rounds"):
        out["calls_per_s"] = await saturation(ref, spec["depth"], spec["saturation_rounds"])
    if spec.get("job"):
        started = time.perf_counter()
        failures = await ref.fan_out(JOB_METHOD, JOB_PARAMS)
        out.update(job_fanout_s=round(time.perf_counter() - started, 3), job_failures=failures)
    out.update(logins_per_host_max=round(ref.logins / count), logins_per_host_mean=round(ref.logins / count, 3),
               ebusy=ref.ebusy)
    await ref.close()
    return out


def main() -> None:
    spec = load_spec()
    raise_nofile(len(spec["hosts"]) + 500)
    emit(asyncio.run(run(spec)))


if __name__ == "__main__":
    main()
