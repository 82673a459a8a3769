import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from flops_env.serve import EXIT_NO_MODEL, EXIT_NO_PORT, bind
from tests.models import digits, fitted_model, save_in_process, start_server, stop_server

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("artifact") / "model"
    save_in_process(folder)
    return folder


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[str]:
    proc, url = start_server(model_dir)
    yield url
    stop_server(proc)


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10, trust_env=False) as c:
        yield c


def test_ping_and_health_answer_200(client: httpx.Client) -> None:
    assert client.get("/ping").status_code == 200
    assert client.get("/health").status_code == 200


def test_predictions_match_the_model_s_own_for_held_out_digits(client: httpx.Client) -> None:
    held = digits().x_held
    expected = fitted_model().predict(held).tolist()
    rows = held.tolist()
    split = {"dataframe_split": {"columns": [f"p{i}" for i in range(64)], "data": rows}}
    csv = "\n".join(",".join(str(v) for v in row) for row in rows)
    answers = [
        client.post("/invocations", json={"inputs": rows}),
        client.post("/invocations", json={"instances": rows}),
        client.post("/invocations", json=split),
        client.post("/invocations", content=csv, headers={"content-type": "text/csv"}),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predictions": expected}
    # and they are good predictions: well above chance on digits never trained on
    assert np.mean(np.array(expected) == digits().y_held) > 0.8


@pytest.mark.parametrize(
    ("request_body", "status", "message"),
    [
        ({"inputs": [[1.0, 2.0]]}, 400, "expects 64 values per row; received 2"),
        ({"rows": [[1.0]]}, 400, "exactly one of the fields"),
        ({"inputs": [[float("nan")] * 64]}, 400, "The model could not score the input: .*NaN"),
    ],
)
def test_bad_input_gets_400_with_mlflow_s_error_body(
    client: httpx.Client, request_body: object, status: int, message: str
) -> None:
    answer = client.post(
        "/invocations",
        content=json.dumps(request_body),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == status
    error = answer.json()
    assert error["error_code"] == "BAD_REQUEST"

    assert re.search(message, error["message"]), error["message"]


def test_other_content_types_get_415(client: httpx.Client) -> None:
    answer = client.post("/invocations", content=b"1,2", headers={"content-type": "text/plain"})
    assert answer.status_code == 415
    assert "application/json and text/csv" in answer.json()["message"]


def test_wrong_methods_and_paths_are_refused(client: httpx.Client) -> None:
    assert client.get("/invocations").status_code == 405
    assert client.get("/nothing").status_code == 404


def test_a_body_over_the_limit_gets_413(model_dir: Path) -> None:
    proc, url = start_server(model_dir, "--max-body-bytes", "100")
    try:
        answer = httpx.post(f"{url}/invocations", json={"inputs": [[0] * 64]}, trust_env=False)
        assert answer.status_code == 413
        assert "larger than 100 bytes" in answer.json()["message"]
    finally:
        stop_server(proc)


def test_the_ready_file_names_the_url_and_sigterm_ends_the_server(
    model_dir: Path, tmp_path: Path
) -> None:
    ready = tmp_path / "ready.json"
    proc, url = start_server(model_dir, "--ready-file", str(ready))
    assert json.loads(ready.read_text()) == {"url": url, "pid": proc.pid}
    proc.terminate()
    assert proc.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    stop_server(proc)


def test_a_folder_without_a_model_exits_3_with_the_reason(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flops_env.serve", "--model-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == EXIT_NO_MODEL
    assert "cannot load the model" in done.stderr
    assert "flavor.json is missing" in done.stderr


def test_a_taken_port_exits_4_with_the_reason(model_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "flops_env.serve", "--model-dir", str(model_dir),
             "--port", str(port)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert done.returncode == EXIT_NO_PORT
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_the_server_exits_when_its_parent_is_gone(model_dir: Path) -> None:
    # a parent that starts the server, waits until it answers, and dies
    script = (
        "import subprocess, sys, os\n"
        "p = subprocess.Popen([sys.executable, '-m', 'flops_env.serve', '--model-dir', "
        f"{str(model_dir)!r}, '--parent-pid', str(os.getpid())], stdout=subprocess.PIPE)\n"
        "print(p.pid, p.stdout.readline().decode().split()[1], flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    pid_text, url = out.stdout.split()
    pid = int(pid_text)
    deadline = time.monotonic() + 20  # a bound on the wait, not a speed claim
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid), "the orphaned server is still running"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/ping", trust_env=False)


def test_the_listening_socket_says_it_is_tcp() -> None:
    # asyncio sets TCP_NODELAY only on sockets whose proto is TCP; without it every answer
    # waited ~40 ms for the client's delayed ACK (bench.serving found it)
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
