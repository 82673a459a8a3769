"""The paho processes of the suite: the fastest bare exchange, and the load generator.

Every ratio of the suite is to the fastest bare exchange the broker carries in the same
run. These processes use paho-mqtt at both ends, in processes of their own (as the stack
is one), MQTT 3.1.1, TCP_NODELAY, QoS 1, clean sessions:

- ``python -m bench.paho echo --port P``: the echo responder, in the manager's place. It
  answers each ``BASE/requests/<asker>`` message with its payload on ``BASE/replies/<asker>``.
- ``python -m bench.paho print --port P --topic T``: a subscriber that prints each payload on
  a line of its own (the bare counterpart of ``flops log --follow``).
- ``python -m bench.paho load --port P --user U --sla FILE``: the load generator. It reads
  commands from stdin, one JSON object a line, and answers each with one JSON line:
  ``{"op": "ask", "kind": "bare"|"start", "count": N, "mode": "loop"|"thread"}`` makes N
  sequential round trips (latencies in seconds); ``{"op": "burst", "kind": …, "clients": C,
  "total": N, "budget": S}`` runs C clients with one request in flight each.

``kind`` ``bare`` asks the echo responder; ``start`` sends ``CreateProject`` requests to the
stack, each with a new request id, and checks the answers after the clock stopped. Two
ways of driving paho are offered: ``loop`` is its external-loop API (``loop_read`` and
``loop_write`` from one ``select`` over every client's socket, no thread), ``thread`` is
``loop_start`` with the asker waiting on a ``threading.Event``. The suite measures both
for the sequential round trip and keeps the faster.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import selectors
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

BASE = "bench/v1/users/paho"  # apart from the aiomqtt echo's (bench.bare), which may run too
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
PLACEHOLDER = "f" * 32  # the request id in a request's template
Callback = Callable[[paho.Client, Any, paho.MQTTMessage], None]


def client(host: str, port: int, on_message: Callback, name: str = "") -> paho.Client:
    """A connected paho client (CONNACK not yet read) with TCP_NODELAY, logging off."""
    mqtt = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=name or "bench-paho-" + uuid.uuid4().hex[:12],
        clean_session=True,
        protocol=paho.MQTTv311,
    )
    mqtt.max_inflight_messages_set(1000)
    mqtt.max_queued_messages_set(0)
    mqtt.on_message = on_message
    mqtt.connect(host, port, keepalive=60)
    sock = mqtt.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(*NODELAY)
    return mqtt


class Loop:
    """paho's external-loop API over many clients: one ``select``, no threads."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.clients: list[paho.Client] = []

    def add(self, mqtt: paho.Client) -> None:
        """Drive ``mqtt`` from this loop."""
        sock = mqtt.socket()
        if sock is None:
            raise RuntimeError("not connected")
        self.selector.register(sock, selectors.EVENT_READ, mqtt)
        self.clients.append(mqtt)

    def turn(self, timeout: float) -> None:
        """Read what arrived within ``timeout``; write what the callbacks queued."""
        for key, _ in self.selector.select(timeout):
            mqtt: paho.Client = key.data
            mqtt.loop_read(100)
            if mqtt.want_write():
                mqtt.loop_write()

    def misc(self) -> None:
        """Keep-alives, and writes left over."""
        for mqtt in self.clients:
            mqtt.loop_misc()
            if mqtt.want_write():
                mqtt.loop_write()

    def until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Turn until ``done()`` or ``timeout`` seconds; whether it is done."""
        deadline = time.perf_counter() + timeout
        while not done():
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            self.turn(min(left, 1.0))
        return True

    def subscribe(self, mqtt: paho.Client, topic: str) -> None:
        """Wait for the CONNACK, subscribe at QoS 1 and wait for the SUBACK."""
        acked: list[bool] = []
        mqtt.on_subscribe = lambda *_: acked.append(True)
        if not self.until(mqtt.is_connected, 10):
            raise RuntimeError("no CONNACK from the broker")
        mqtt.subscribe(topic, qos=1)
        if not self.until(lambda: bool(acked), 10):
            raise RuntimeError(f"no SUBACK for {topic}")

    def close(self) -> None:
        """Disconnect every client."""
        for mqtt in self.clients:
            mqtt.disconnect()
            mqtt.loop_write()
        self.selector.close()


def echo(host: str, port: int) -> None:
    """The echo responder: until stdin closes."""

    def answer(mqtt: paho.Client, _data: Any, message: paho.MQTTMessage) -> None:  # noqa: ANN401
        asker = message.topic.rsplit("/", 1)[1]
        mqtt.publish(f"{BASE}/replies/{asker}", message.payload, qos=1)

    loop = Loop()
    mqtt = client(host, port, answer, "bench-paho-echo-" + uuid.uuid4().hex[:8])
    loop.add(mqtt)
    loop.subscribe(mqtt, f"{BASE}/requests/+")
    _serve(loop)


def printer(host: str, port: int, topic: str) -> None:
    """Print every payload on ``topic`` on a line of its own, until stdin closes."""
    out = sys.stdout.buffer

    def show(_mqtt: paho.Client, _data: Any, message: paho.MQTTMessage) -> None:  # noqa: ANN401
        out.write(message.payload + b"\n")
        out.flush()

    loop = Loop()
    mqtt = client(host, port, show)
    loop.add(mqtt)
    loop.subscribe(mqtt, topic)
    _serve(loop)


def _serve(loop: Loop) -> None:
    """Say ready, then run ``loop`` until stdin closes (the suite ends us that way)."""
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    stdin = sys.stdin.buffer.fileno()
    loop.selector.register(stdin, selectors.EVENT_READ, None)
    last = time.monotonic()
    while True:
        for key, _ in loop.selector.select(1.0):
            if key.data is None:
                return  # stdin readable: closed (nothing is written to it)
            mqtt: paho.Client = key.data
            mqtt.loop_read(100)
            if mqtt.want_write():
                mqtt.loop_write()
        if time.monotonic() - last > 5:
            loop.misc()
            last = time.monotonic()


class Publisher:
    """A paho publisher driven from the caller's thread (external loop, no thread of its own).

    ``publish`` writes the packet at once; ``pump`` reads the acknowledgements that came.
    """

    def __init__(self, host: str, port: int) -> None:
        self.loop = Loop()
        self.mqtt = client(host, port, lambda *_: None)
        self.loop.add(self.mqtt)
        if not self.loop.until(self.mqtt.is_connected, 10):
            raise RuntimeError("no CONNACK from the broker")

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 now."""
        self.mqtt.publish(topic, payload, qos=1)

    def pump(self) -> None:
        """Read acknowledgements without waiting; keep the connection alive."""
        self.loop.turn(0)
        self.loop.misc()

    def close(self) -> None:
        """Disconnect."""
        self.loop.close()


# ----------------------------------------------------------------------- the load generator


@dataclass
class Target:
    """What a kind of request is: where it goes, where answers come, how it is made."""

    kind: str
    user: str
    sla: dict[str, Any]
    sla_name: str

    def topics(self, name: str) -> tuple[str, str]:
        """The request topic and the reply topic of client ``name``."""
        if self.kind == "bare":
            return f"{BASE}/requests/{name}", f"{BASE}/replies/{name}"
        from protocol import topics  # noqa: PLC0415 - the echo and printer need none of it

        return (
            str(topics.request(self.user, topics.Op.CREATE_PROJECT)),
            str(topics.reply(self.user, name)),
        )

    def template(self, name: str) -> bytes:
        """A request of client ``name`` with ``PLACEHOLDER`` as its request id."""
        from protocol import codec  # noqa: PLC0415 - as above
        from protocol.messages import CreateProject  # noqa: PLC0415

        request = CreateProject(
            request_id=PLACEHOLDER, reply_to=name, sla=self.sla, sla_name=self.sla_name
        )
        return codec.encode(request)


@dataclass
class Asker:
    """One client with at most one request in flight."""

    mqtt: paho.Client
    name: str
    request_topic: str
    template: bytes
    sent: str = ""  # the request id in flight
    started: float = 0.0
    answers: list[tuple[str, bytes, float]] = field(default_factory=list)

    def send(self) -> None:
        """Publish a new request (its id in ``sent``); the clock starts."""
        self.sent = uuid.uuid4().hex
        payload = self.template.replace(PLACEHOLDER.encode(), self.sent.encode(), 1)
        self.started = time.perf_counter()
        self.mqtt.publish(self.request_topic, payload, qos=1)


def _asker(target: Target, host: str, port: int, on_message: Callback) -> Asker:
    name = "cli-" + uuid.uuid4().hex  # as the CLI names its sessions
    mqtt = client(host, port, on_message, name)
    request_topic, _ = target.topics(name)
    body = target.template(name)
    if target.kind == "bare":  # the same size as a start, the id where the echo keeps it
        body = PLACEHOLDER.encode() + body[len(PLACEHOLDER) :]
    return Asker(mqtt, name, request_topic, body)


def answer_of(kind: str, payload: bytes) -> tuple[str, str, str]:
    """(request id, project id or "", error code or "") of an answer."""
    if kind == "bare":
        return payload[:32].decode(), "", ""
    reply = json.loads(payload)
    error = reply.get("error") or {}
    result = reply.get("result") or {}
    return reply["request_id"], str(result.get("id", "")), str(error.get("code", ""))


class Load:
    """The load generator's state: the sequential askers it keeps warm, by kind and mode."""

    def __init__(self, host: str, port: int, user: str, sla: dict[str, Any], sla_name: str) -> None:
        self.host, self.port = host, port
        self.user, self.sla, self.sla_name = user, sla, sla_name
        self._loops: dict[str, tuple[Loop, Asker]] = {}
        self._threads: dict[str, tuple[Asker, threading.Event]] = {}

    def target(self, kind: str) -> Target:
        """The requests of ``kind``."""
        if kind not in ("bare", "start"):
            raise ValueError(f"unknown kind {kind!r}")
        return Target(kind, self.user, self.sla, self.sla_name)

    def ask(self, kind: str, count: int, mode: str) -> dict[str, Any]:
        """``count`` sequential round trips; their latencies and what went wrong."""
        if mode == "thread":
            return self._ask_threaded(kind, count)
        if kind not in self._loops:
            loop = Loop()
            target = self.target(kind)
            got: list[tuple[str, bytes, float]] = []

            def on_message(_m: paho.Client, _d: Any, message: paho.MQTTMessage) -> None:  # noqa: ANN401
                got.append(("", bytes(message.payload), time.perf_counter()))

            asker = _asker(target, self.host, self.port, on_message)
            asker.answers = got
            loop.add(asker.mqtt)
            loop.subscribe(asker.mqtt, target.topics(asker.name)[1])
            self._loops[kind] = (loop, asker)
            self._rounds(kind, asker, 20 if kind == "bare" else 5, loop.until)  # warm-up
        loop, asker = self._loops[kind]
        try:
            return self._rounds(kind, asker, count, loop.until)
        finally:
            loop.misc()

    @staticmethod
    def _rounds(
        kind: str, asker: Asker, count: int, until: Callable[[Callable[[], bool], float], bool]
    ) -> dict[str, Any]:
        """``count`` round trips of ``asker``; ``until(done, timeout)`` waits for an answer."""
        latencies: list[float] = []
        wrong: list[str] = []
        for _ in range(count):
            asker.answers.clear()
            asker.send()
            if not until(lambda: bool(asker.answers), 60):
                wrong.append(f"{asker.sent}: no answer within 60s")
                continue
            _, payload, arrived = asker.answers[0]
            latencies.append(arrived - asker.started)
            request_id, _, error = answer_of(kind, payload)
            if request_id != asker.sent or error:
                wrong.append(f"{asker.sent}: answered {request_id} {error}")
        return {"latencies": latencies, "wrong": wrong}

    def _ask_threaded(self, kind: str, count: int) -> dict[str, Any]:
        if kind not in self._threads:
            target = self.target(kind)
            arrived = threading.Event()
            holder: list[Asker] = []

            def on_message(_m: paho.Client, _d: Any, message: paho.MQTTMessage) -> None:  # noqa: ANN401
                holder[0].answers.append(("", bytes(message.payload), time.perf_counter()))
                arrived.set()

            asker = _asker(target, self.host, self.port, on_message)
            holder.append(asker)
            subscribed = threading.Event()
            asker.mqtt.on_subscribe = lambda *_: subscribed.set()
            asker.mqtt.on_connect = lambda m, *_: m.subscribe(target.topics(asker.name)[1], qos=1)
            asker.mqtt.loop_start()
            if not subscribed.wait(10):
                raise RuntimeError("no SUBACK (thread mode)")
            self._threads[kind] = (asker, arrived)
        asker, arrived = self._threads[kind]

        def until(_done: Callable[[], bool], timeout: float) -> bool:
            # The callback thread sets ``arrived``; cleared for the next round once seen.
            got = arrived.wait(timeout)
            arrived.clear()
            return got

        if not asker.started:
            self._rounds(kind, asker, 20 if kind == "bare" else 5, until)  # warm-up
        return self._rounds(kind, asker, count, until)

    def burst(self, kind: str, clients: int, total: int, budget: float) -> dict[str, Any]:
        """``clients`` askers, one request in flight each, ``total`` in all or ``budget`` s."""
        run = Burst(self.target(kind), total, budget)
        for index in range(clients):

            def on_message(
                _m: paho.Client,
                _d: Any,  # noqa: ANN401
                message: paho.MQTTMessage,
                index: int = index,
            ) -> None:
                run.answered(index, bytes(message.payload))

            asker = _asker(run.target, self.host, self.port, on_message)
            run.askers.append(asker)
            run.loop.add(asker.mqtt)
            run.loop.subscribe(asker.mqtt, run.target.topics(asker.name)[1])
        return run.run()


@dataclass
class Burst:
    """Concurrent askers, one request in flight each, until ``total`` or ``budget`` seconds.

    A ``busy`` answer is honoured as the CLI honours it: the same request again after a
    short pause with jitter. Nothing else is resent; a request still unanswered a minute
    after the last answer counts as unanswered.
    """

    target: Target
    total: int
    budget: float
    loop: Loop = field(default_factory=Loop)
    askers: list[Asker] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)  # request id -> project id
    doubled: int = 0
    busy: int = 0
    failed: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # seconds from the start to each answer
    later: list[tuple[float, int]] = field(default_factory=list)  # busy: (when, asker)
    sent: int = 0
    start: float = 0.0

    def answered(self, index: int, payload: bytes) -> None:
        """An answer reached asker ``index``."""
        asker = self.askers[index]
        request_id, project_id, error = answer_of(self.target.kind, payload)
        if error == "busy" and request_id == asker.sent:
            self.busy += 1
            heapq.heappush(self.later, (time.perf_counter() + random.uniform(0.05, 0.2), index))
            return
        if request_id in self.answers:
            self.doubled += 1
        if error:
            self.failed.append(f"{request_id}: {error}")
        else:
            self.answers[request_id] = project_id
        self.times.append(time.perf_counter() - self.start)
        if request_id == asker.sent:
            self.next_one(asker)

    def next_one(self, asker: Asker) -> None:
        """Send ``asker``'s next request, if any is left to send."""
        asker.sent = ""
        if self.sent < self.total and time.perf_counter() - self.start < self.budget:
            self.sent += 1
            asker.send()

    def resend_busy(self, now: float) -> None:
        """Send again the requests whose busy pause is over."""
        while self.later and self.later[0][0] <= now:
            asker = self.askers[heapq.heappop(self.later)[1]]
            payload = asker.template.replace(PLACEHOLDER.encode(), asker.sent.encode(), 1)
            asker.mqtt.publish(asker.request_topic, payload, qos=1)

    def run(self) -> dict[str, Any]:
        """Run until every request is answered (or a minute passes without an answer)."""
        self.start = misc = last_answer = time.perf_counter()
        for asker in self.askers:
            self.next_one(asker)
        seen = 0
        while any(a.sent for a in self.askers):
            self.loop.turn(0.05)
            now = time.perf_counter()
            self.resend_busy(now)
            if len(self.times) != seen:
                seen, last_answer = len(self.times), now
            elif now - last_answer > 60:
                self.failed += [f"{a.sent}: no answer" for a in self.askers if a.sent]
                break
            if now - misc > 5:
                self.loop.misc()
                misc = now
        seconds = time.perf_counter() - self.start
        self.loop.close()
        return {
            "requested": self.sent,
            "answers": self.answers,
            "doubled": self.doubled,
            "failed": self.failed,
            "busy": self.busy,
            "seconds": seconds,
            "times": self.times,
        }


def load(host: str, port: int, user: str, sla_file: Path, sla_name: str) -> None:
    """Answer commands from stdin, one JSON line each, until stdin closes."""
    sla = json.loads(sla_file.read_text()) if sla_file.name else {}
    state = Load(host, port, user, sla, sla_name)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        try:
            result = state.ask(**command) if op == "ask" else state.burst(**command)
        except Exception as exc:  # reported to the suite, which raises it
            result = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.paho echo|print|load …``."""
    parser = argparse.ArgumentParser(prog="python -m bench.paho", description=__doc__)
    parser.add_argument("role", choices=["echo", "print", "load"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", default="")
    parser.add_argument("--user", default="")
    parser.add_argument("--sla", type=Path, default=Path())
    parser.add_argument("--sla-name", default="")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.role == "echo":
        echo(args.host, args.port)
    elif args.role == "print":
        printer(args.host, args.port, args.topic)
    else:
        load(args.host, args.port, args.user, args.sla, args.sla_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
