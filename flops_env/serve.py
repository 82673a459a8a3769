"""The scoring server of a trained model: MLflow's protocol on starlette and uvicorn.

Runs in the trained model's environment (its flavor's libraries, skops, starlette,
uvicorn, numpy)::

    python -m flops_env.serve --model-dir ARTIFACT/model [--host 127.0.0.1] [--port 0]
                              [--ready-file PATH] [--parent-pid PID]

``GET /ping`` and ``GET /health`` answer 200 (nothing is answered before the model is
loaded); ``POST /invocations`` scores a body in one of the formats of
``flops_env.scoring`` and answers ``{"predictions": [...]}``, or 400/413/415 with
``{"error_code": "BAD_REQUEST", "message": ...}``. Port 0 picks a free port. When the server
answers, it prints ``FLOPS_SERVE_READY <url>`` on stdout and, with ``--ready-file``, writes
``{"url": ..., "pid": ...}`` there. With ``--parent-pid`` it exits when that process is gone,
so a killed supervisor leaves no server behind. A model that cannot be loaded ends the
process with exit code 3 and the reason on stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from flops_env import scoring
from flops_env.flavors import FlavorError, LoadedModel, load_model, version_drift

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

READY = "FLOPS_SERVE_READY"
EXIT_NO_MODEL = 3
EXIT_NO_PORT = 4


def error_response(message: str, status: int = 400) -> Response:
    """MLflow's error body: ``{"error_code": "BAD_REQUEST", "message": ...}``."""
    from starlette.responses import JSONResponse  # noqa: PLC0415 - env-side lazy import

    return JSONResponse({"error_code": "BAD_REQUEST", "message": message}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise scoring.BadInputError(f"the body is larger than {limit} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise scoring.BadInputError(f"the body is larger than {limit} bytes", 413)
    return bytes(body)


def create_app(loaded: LoadedModel, max_body: int = 64 << 20) -> Starlette:
    """The ASGI app answering ``/ping``, ``/health`` and ``/invocations`` for one model."""
    from starlette.applications import Starlette  # noqa: PLC0415
    from starlette.responses import Response  # noqa: PLC0415
    from starlette.routing import Route  # noqa: PLC0415

    width = loaded.info.get("n_features_in")
    predict = loaded.predictor()

    async def ping(_: Request) -> Response:
        return Response("\n", media_type="application/json")

    async def invocations(request: Request) -> Response:
        try:
            body = await read_body(request, max_body)
            rows = scoring.decode(body, request.headers.get("content-type"), width)
        except scoring.BadInputError as exc:
            return error_response(str(exc), exc.status)
        try:
            # Called on the event loop: one model, CPU-bound, no gain from a thread pool.
            predictions = predict(rows)
        except Exception as exc:
            return error_response(f"The model could not score the input: {exc}")
        return Response(scoring.encode(predictions), media_type="application/json")

    routes = [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of the server."""
    parser = argparse.ArgumentParser(prog="python -m flops_env.serve", description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--max-body-bytes", type=int, default=64 << 20)
    return parser.parse_args(argv)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port), reusable right after a restart."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every response waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce(url: str, ready_file: Path | None) -> None:
    """Tell the parent the server answers: a stdout line, and the ready file if asked."""
    if ready_file is not None:
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
        tmp.replace(ready_file)
    print(f"{READY} {url}", flush=True)


def run_server(
    app: Starlette, sock: socket.socket, ready_file: Path | None = None, parent_pid: int = 0
) -> None:
    """Run ``app`` on uvicorn on ``sock`` until SIGTERM/SIGINT, or until the parent is gone."""
    import uvicorn  # noqa: PLC0415

    url = url_of(sock)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                announce(url, ready_file)

        async def on_tick(self, counter: int) -> bool:
            if parent_pid and os.getppid() != parent_pid:
                return True
            return await super().on_tick(counter)

    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=3
    )
    Server(config).run(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    """Bind (a taken port fails fast, before the heavy imports), load, serve; the exit code.

    Connections that arrive while the model loads wait in the listen queue; nothing
    answers before the model is loaded.
    """
    args = parse_args(argv)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(f"flops_env.serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_NO_PORT
    try:
        loaded = load_model(args.model_dir)
    except FlavorError as exc:
        sock.close()
        print(f"flops_env.serve: cannot load the model: {exc}", file=sys.stderr)
        return EXIT_NO_MODEL
    for drift in version_drift(loaded.info):
        print(f"flops_env.serve: warning: {drift}", file=sys.stderr)
    # The libraries and the model are here for good: out of the collector's sight, so that
    # its full collections, which requests' allocations trigger, do not walk them each time.
    gc.collect()
    gc.freeze()
    run_server(create_app(loaded, args.max_body_bytes), sock, args.ready_file, args.parent_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
