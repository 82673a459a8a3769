import asyncio

import pytest

from core.progress import Notice, Recorder
from images.errors import ResolutionError
from images.uvrun import MAX_MESSAGE, UvOptions, _follow, readable, run_uv


@pytest.mark.timeout(10)
def test_readable_keeps_the_error_from_its_first_line_and_bounds_it() -> None:
    lines = ["Resolved 3 packages", "error: No solution found", "  cause: because x"]
    assert readable(lines) == "error: No solution found\n  cause: because x"
    long = readable(["error: many"] + [f"line {i} " + "x" * 80 for i in range(200)])
    assert len(long) < MAX_MESSAGE + 100 and long.endswith("more lines)")


@pytest.mark.timeout(10)
async def test_a_silent_uv_still_reports_that_it_works() -> None:
    stream = asyncio.StreamReader()
    progress = Recorder()
    first = asyncio.Event()

    async def record(notice: Notice) -> None:
        await progress(notice)
        first.set()

    async def feed() -> None:
        await first.wait()  # the first "still working" notice
        stream.feed_data(b"Resolved 1 package in 1ms\n + numpy==1.26.4\n")
        stream.feed_eof()

    lines, _ = await asyncio.gather(
        _follow(stream, "Resolving", UvOptions(interval=0.02), record), feed()
    )
    assert lines == ["Resolved 1 package in 1ms", " + numpy==1.26.4"]
    texts = progress.texts()
    assert texts[0].startswith("Resolving: still working")
    assert (
        texts[-1] == "Resolving: Resolved 1 package in 1ms"
    )  # per-package lines are not passed on


@pytest.mark.timeout(60)
async def test_a_failure_carries_uvs_own_message() -> None:
    with pytest.raises(ResolutionError) as err:
        await run_uv("pip", "compile", "--no-such-flag", what="Resolving", error=ResolutionError)
    assert str(err.value).startswith(
        "Resolving failed:\nerror: unexpected argument '--no-such-flag'"
    )
