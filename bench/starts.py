"""Project starts through the CLI's own request code (``mqtt.requester.Session``)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from bench.harness import SLA_NAME, USER
from core.errors import FlopsError
from mqtt.link import BrokerAddress
from mqtt.requester import Session, session
from protocol import codec, topics
from protocol.messages import CreateProject, ProjectView, new_request_id

TOPIC = topics.request(USER, topics.Op.CREATE_PROJECT)


def request_body(sla: dict[str, Any]) -> bytes:
    """The encoded ``CreateProject`` a start sends (the baselines send as many bytes)."""
    return codec.encode(
        CreateProject(request_id=new_request_id(), reply_to="cli-0123456789abcdef", sla=sla)
    )


async def start_once(sess: Session, sla: dict[str, Any], timeout: float = 60) -> tuple[float, str]:
    """Start one project; the seconds from publish to answer and the project id."""
    req = CreateProject(
        request_id=new_request_id(), reply_to=sess.client_id, sla=sla, sla_name=SLA_NAME
    )
    start = time.perf_counter()
    view = await sess.request(TOPIC, req, ProjectView, timeout)
    return time.perf_counter() - start, view.id


async def sequential(address: BrokerAddress, sla: dict[str, Any], count: int) -> list[float]:
    """``count`` project starts one after the other from one client; seconds each."""
    async with session(address, USER, 60) as sess:
        return [(await start_once(sess, sla))[0] for _ in range(count)]


@dataclass
class Burst:
    """What a burst of concurrent starts produced."""

    requested: int = 0
    answers: dict[str, str] = field(default_factory=dict)  # request id -> project id
    doubled: int = 0  # a request id answered twice
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    times: list[float] = field(default_factory=list)  # seconds from the start to each answer
    busy: int = 0  # busy answers (each request was sent again)

    @classmethod
    def of(cls, burst: dict[str, Any]) -> Burst:
        """The burst the paho load generator reported (``bench.paho.Load.burst``)."""
        return cls(
            requested=int(burst["requested"]),
            answers={str(k): str(v) for k, v in burst["answers"].items()},
            doubled=int(burst["doubled"]),
            failed=[str(f) for f in burst["failed"]],
            seconds=float(burst["seconds"]),
            times=[float(t) for t in burst["times"]],
            busy=int(burst["busy"]),
        )

    @property
    def rate(self) -> float:
        """Answered starts per second."""
        return len(self.answers) / self.seconds if self.seconds else 0.0

    def rate_over(self, part: slice) -> float:
        """Answers per second over a ``part`` of the answers, in answer order."""
        times = self.times[part]
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


async def burst(
    address: BrokerAddress,
    sla: dict[str, Any],
    clients: int,
    total: int,
    *,
    budget: float = 1e9,
    timeout: float = 120,
) -> Burst:
    """``clients`` sessions, each starting its share of ``total`` projects one at a time.

    No new start is sent after ``budget`` seconds; those in flight are answered.
    """
    result = Burst()
    shares = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    start = time.perf_counter()
    deadline = start + budget

    async def client(share: int) -> None:
        async with session(address, USER, timeout) as sess:
            for _ in range(share):
                if time.perf_counter() > deadline:
                    return
                result.requested += 1
                req = CreateProject(
                    request_id=new_request_id(), reply_to=sess.client_id, sla=sla, sla_name=SLA_NAME
                )
                try:
                    view = await sess.request(TOPIC, req, ProjectView, timeout)
                except FlopsError as exc:
                    result.failed.append(f"{req.request_id}: {exc}")
                    continue
                if req.request_id in result.answers:
                    result.doubled += 1
                result.answers[req.request_id] = view.id
                result.times.append(time.perf_counter() - start)

    await asyncio.gather(*(client(s) for s in shares if s))
    result.seconds = time.perf_counter() - start
    return result
