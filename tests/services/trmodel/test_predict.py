import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from services.trmodel.artifact import Artifact
from services.trmodel.errors import (
    InputFileError,
    PredictError,
    PredictionRejectedError,
    ServiceUnavailableError,
)
from services.trmodel.predict import Payload, payload_from_array, predict, read_inputs
from tests.models import digits, fitted_model, start_server, stop_server

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def url(shared_artifact: Artifact) -> Iterator[str]:
    proc, address = start_server(shared_artifact.model_dir)
    yield address
    stop_server(proc)


def rows_of(payload: Payload) -> list[list[float]]:
    assert payload.content_type == "application/json"
    rows: list[list[float]] = json.loads(payload.body)["inputs"]
    return rows


def test_json_rows_one_row_and_json_lines_are_read(tmp_path: Path) -> None:
    (tmp_path / "rows.json").write_text("[[1, 2], [3, 4]]")
    (tmp_path / "row.json").write_text("[1, 2]")
    (tmp_path / "rows.jsonl").write_text("[1, 2]\n\n[3, 4]\n")
    assert rows_of(read_inputs(str(tmp_path / "rows.json"))) == [[1, 2], [3, 4]]
    assert rows_of(read_inputs(str(tmp_path / "row.json"))) == [[1, 2]]
    assert rows_of(read_inputs(str(tmp_path / "rows.jsonl"))) == [[1, 2], [3, 4]]


def test_a_full_request_body_is_sent_as_it_is(tmp_path: Path) -> None:
    body = '{"dataframe_split": {"columns": ["a"], "data": [[1]]}}'
    (tmp_path / "req.json").write_text(body)
    assert read_inputs(str(tmp_path / "req.json")) == Payload(body.encode(), "application/json")


def test_stdin_takes_json_or_csv() -> None:
    assert rows_of(read_inputs("-", io.BytesIO(b" [[5, 6]]"))) == [[5, 6]]
    assert read_inputs("-", io.BytesIO(b"1,2\n")) == Payload(b"1,2\n", "text/csv")
    with pytest.raises(InputFileError, match="no standard input"):
        read_inputs("-", None)


def test_arrays_are_rows_and_images_are_flattened(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", np.arange(4))
    np.save(tmp_path / "images.npy", np.zeros((3, 2, 2), dtype=np.uint8))
    np.savez(tmp_path / "part.npz", image=np.ones((2, 2, 2)), label=np.array([1, 2]))
    np.savez(tmp_path / "only.npz", x=np.ones((2, 3)))
    assert rows_of(read_inputs(str(tmp_path / "one.npy"))) == [[0, 1, 2, 3]]
    assert rows_of(read_inputs(str(tmp_path / "images.npy"))) == [[0, 0, 0, 0]] * 3
    assert rows_of(read_inputs(str(tmp_path / "part.npz"))) == [[1.0] * 4] * 2
    assert rows_of(read_inputs(str(tmp_path / "only.npz"))) == [[1.0] * 3] * 2


def test_csv_files_are_sent_as_csv(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    assert read_inputs(str(tmp_path / "x.csv")) == Payload(b"a,b\n1,2\n", "text/csv")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "cannot read .*missing.json: No such file"),
        ("obj.json", b'{"rows": []}', "must hold one of inputs"),
        ("empty.json", b"[]", "non-empty list of rows"),
        ("lines.jsonl", b"[1]\nnope\n", "line 2 is not JSON"),
        ("bin.dat", b"\xff\xfe\x00", "not UTF-8 text"),
        ("pickle.npy", None, "not a numpy file without pickles"),
        ("text.npy", None, "holds <U1, not numbers"),
        ("many.npz", None, "holds a, b; expected 'image'"),
    ],
)
def test_unreadable_inputs_are_named(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    elif name == "pickle.npy":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif name == "text.npy":
        np.save(path, np.array(["a", "b"]))
    elif name == "many.npz":
        np.savez(path, a=np.ones(2), b=np.ones(2))
    with pytest.raises(InputFileError, match=message):
        read_inputs(str(path))


async def test_predict_returns_the_model_s_predictions(url: str, tmp_path: Path) -> None:
    held = digits().x_held
    np.save(tmp_path / "held.npy", held.reshape(-1, 8, 8))
    got = await predict(url, read_inputs(str(tmp_path / "held.npy")))
    assert got == fitted_model().predict(held).tolist()


async def test_bad_input_is_rejected_with_the_server_s_reason(url: str) -> None:
    with pytest.raises(
        PredictionRejectedError,
        match=r"refused the input \(400\): the model expects 64 values per row; received 2",
    ) as caught:
        await predict(url, payload_from_array(np.ones((1, 2)), "x"))
    assert caught.value.status == 400


async def test_a_service_that_is_down_is_named(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        ServiceUnavailableError, match=f"no inference service answers at http://127.0.0.1:{port}"
    ):
        await predict(f"http://127.0.0.1:{port}", Payload(b"{}", "application/json"))


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (200, b"[]", PredictError, "answered without predictions"),
        (200, b'{"predictions": 3}', PredictError, "predictions that are not a list"),
        (503, b"busy", PredictionRejectedError, r"\(503\): busy"),
    ],
)
async def test_odd_answers_are_named(
    status: int, body: bytes, error: type[Exception], message: str
) -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(status, content=body))
    with pytest.raises(error, match=message):
        await predict("http://x", Payload(b"{}", "application/json"), transport=transport)


async def test_a_service_that_does_not_answer_in_time_is_named() -> None:
    def hang(_: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    with pytest.raises(ServiceUnavailableError, match="did not answer within 1 s"):
        await predict(
            "http://x",
            Payload(b"{}", "application/json"),
            timeout=1,
            transport=httpx.MockTransport(hang),
        )
