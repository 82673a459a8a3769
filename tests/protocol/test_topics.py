import pytest

from protocol import topics
from protocol.topics import Kind, Op, Topic, TopicError

P = "6761bf5d59461659a24b1197"

ROUND_TRIP = [
    (topics.request("Admin", Op.CREATE_PROJECT), "flops/v1/users/Admin/requests/create_project"),
    (topics.reply("Admin", "cli-1"), "flops/v1/users/Admin/replies/cli-1"),
    (topics.events("Admin", P), f"flops/v1/users/Admin/projects/{P}/events"),
    (topics.log("Admin", P), f"flops/v1/users/Admin/projects/{P}/log"),
    (topics.log_query("Admin", P), f"flops/v1/users/Admin/projects/{P}/log/query"),
]


@pytest.mark.parametrize(("topic", "text"), ROUND_TRIP, ids=[t for _, t in ROUND_TRIP])
def test_topics_build_and_parse_back(topic: Topic, text: str) -> None:
    assert str(topic) == text
    assert Topic.parse(text) == topic


@pytest.mark.parametrize(
    "text",
    [
        "flops/v2/users/Admin/requests/create_project",
        "flops/v1/users/Admin/requests/drop_tables",
        "flops/v1/users/Admin",
        "flops/v1/users/+/requests/create_project",
        "flops/v1/users/Admin/projects/p/events/extra",
        "other/v1/users/Admin/replies/x",
    ],
)
def test_foreign_topics_are_refused(text: str) -> None:
    with pytest.raises(TopicError):
        Topic.parse(text)


@pytest.mark.parametrize("user", ["", "a/b", "+", "#", "x" * 65, "-lead"])
def test_users_that_could_escape_their_subtree_are_refused(user: str) -> None:
    with pytest.raises(TopicError):
        topics.events(user, P)


MATCHES = [
    (topics.ALL_REQUESTS, "flops/v1/users/a/requests/list_apps", True),
    (topics.ALL_EVENTS, f"flops/v1/users/a/projects/{P}/events", True),
    (topics.ALL_EVENTS, f"flops/v1/users/a/projects/{P}/log", False),
    (topics.ALL_LOG_QUERIES, f"flops/v1/users/a/projects/{P}/log/query", True),
    ("flops/#", "flops/v1/anything/at/all", True),
    ("flops/v1/users/+/replies/+", "flops/v1/users/a/replies", False),
]


@pytest.mark.parametrize(("flt", "topic", "expected"), MATCHES)
def test_filters_match_like_mqtt(flt: str, topic: str, expected: bool) -> None:
    assert topics.matches(flt, topic) is expected


def test_project_id_only_on_project_topics() -> None:
    assert topics.events("a", P).project_id == P
    with pytest.raises(TopicError):
        _ = topics.reply("a", "c").project_id
    assert Topic.parse(str(topics.log("a", P))).kind is Kind.LOG
