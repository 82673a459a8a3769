import pytest

from mlrepos.git import git_reason

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        (
            b"fatal: unable to access 'https://github.com/a/b/': Could not resolve host: "
            b"github.com\n",
            "unable to access 'https://github.com/a/b/': Could not resolve host: github.com",
        ),
        (
            b"ERROR: Repository not found.\nfatal: Could not read from remote repository.\n\n"
            b"Please make sure you have the correct access rights\nand the repository exists.\n",
            "ERROR: Repository not found.",
        ),
        (b"", "the repository has no HEAD"),
        (b"fatal: " + b"x" * 1000, "x" * 299 + "…"),
    ],
)
def test_git_errors_keep_the_lines_that_say_what_went_wrong(stderr: bytes, reason: str) -> None:
    assert git_reason(stderr) == reason
