import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from core.progress import Recorder
from mlrepos import bundled
from mlrepos.contract import check_contract
from mlrepos.errors import ContractError, RepoError
from mlrepos.sources import resolve_repo, split_url
from tests.conftest import head_of, make_repo

SEED_URL = "https://github.com/Malyuk-A/flops_ml_repo_mnist_sklearn"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@e",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@e",
}


def commit_file(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "-C", str(repo), "add", name], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", name], check=True, env=env)
    return head_of(repo)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every https fetch goes to a closed port: GitHub is unreachable, quickly, everywhere."""
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "http.proxy")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "http://127.0.0.1:9")


@pytest.mark.timeout(30)
async def test_a_git_url_is_exported_at_the_one_commit_resolved(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repos")
    first = commit_file(repo, "model_manager.py", "v1\n")
    snap = await resolve_repo(f"file://{repo}", tmp_path / "node")
    assert snap.commit == first and not snap.fallback
    assert (snap.user, snap.repo) == ("malyuk-a", "flops_ml_repo_mnist_sklearn")
    assert (
        snap.path
        == tmp_path / "node" / "repos" / "malyuk-a" / "flops_ml_repo_mnist_sklearn" / first
    )
    commit_file(repo, "model_manager.py", "v2\n")  # the repository moves on
    assert (snap.path / "model_manager.py").read_text() == "v1\n"
    again = await resolve_repo(f"file://{repo}", tmp_path / "node")
    assert again.commit != first and (again.path / "model_manager.py").read_text() == "v2\n"


@pytest.mark.timeout(30)
async def test_concurrent_resolutions_of_one_commit_share_one_export(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repos")
    commit_file(repo, "conda.yaml", "name: x\n")
    snaps = await asyncio.gather(*(resolve_repo(f"file://{repo}", tmp_path) for _ in range(4)))
    assert len({s.path for s in snaps}) == 1
    assert sorted(p.name for p in snaps[0].path.parent.iterdir()) == [snaps[0].commit]


@pytest.mark.timeout(30)
async def test_the_seed_url_offline_falls_back_to_the_bundled_example_with_a_warning(
    tmp_path: Path, offline: None
) -> None:
    progress = Recorder()
    snap = await resolve_repo(SEED_URL, tmp_path, git_timeout=10, progress=progress)
    assert snap.fallback and snap.source == "bundled:flops_ml_repo_mnist_sklearn"
    assert snap.commit == bundled.content_commit(bundled.EXAMPLES / "flops_ml_repo_mnist_sklearn")
    [warning] = progress.texts("warning")
    assert f"cannot reach {SEED_URL}" in warning
    assert "example repository bundled with FLOps, 'flops_ml_repo_mnist_sklearn'" in warning
    assert warning.endswith(f"instead of {SEED_URL}")
    assert check_contract(snap.path).name == "conda.yaml"
    assert (snap.path / "model_manager.py").is_file() and (snap.path / "data_manager.py").is_file()


@pytest.mark.timeout(30)
async def test_an_unreachable_url_without_a_bundled_stand_in_fails(
    tmp_path: Path, offline: None
) -> None:
    with pytest.raises(RepoError, match=r"cannot reach https://github\.com/someone/other_repo"):
        await resolve_repo("https://github.com/someone/other_repo", tmp_path, git_timeout=10)
    assert not (tmp_path / "repos").exists()


@pytest.mark.timeout(30)
async def test_repo_sources_maps_a_url_to_a_folder_or_a_bundled_repo(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "model_manager.py").write_text("x = 1\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    progress = Recorder()
    snap = await resolve_repo(
        "https://github.com/Me/mine.git",
        tmp_path,
        repo_sources={"https://github.com/Me/mine": str(folder)},
        progress=progress,
    )
    assert sorted(p.name for p in snap.path.iterdir()) == ["model_manager.py"]
    assert progress.texts("info") == [
        f"Using {folder} for https://github.com/Me/mine.git (setting repo_sources)"
    ]
    snap = await resolve_repo(
        SEED_URL, tmp_path, repo_sources={SEED_URL: "bundled:flops_ml_repo_mnist_sklearn"}
    )
    assert not snap.fallback and snap.source == "bundled:flops_ml_repo_mnist_sklearn"
    with pytest.raises(RepoError, match="no bundled repository"):
        await resolve_repo(SEED_URL, tmp_path, repo_sources={SEED_URL: "bundled:nope"})


@pytest.mark.timeout(10)
def test_urls_that_are_not_github_style_are_refused() -> None:
    with pytest.raises(RepoError, match="not a GitHub-style"):
        split_url("https://gitlab.com/a/b")


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["conda.yaml"], "model_manager.py not found in the cloned repository."),
        (["model_manager.py"], "conda.yaml not found in the cloned repository."),
        (
            [],
            "model_manager.py not found in the cloned repository. "
            "conda.yaml not found in the cloned repository.",
        ),
    ],
)
def test_the_contract_check_uses_the_originals_texts(
    tmp_path: Path, files: list[str], message: str
) -> None:
    for name in files:
        (tmp_path / name).write_text("")
    with pytest.raises(ContractError) as err:
        check_contract(tmp_path)
    assert str(err.value) == message


@pytest.mark.timeout(10)
def test_requirements_txt_stands_in_for_conda_yaml(tmp_path: Path) -> None:
    (tmp_path / "model_manager.py").write_text("")
    (tmp_path / "requirements.txt").write_text("numpy\n")
    assert check_contract(tmp_path) == tmp_path / "requirements.txt"
