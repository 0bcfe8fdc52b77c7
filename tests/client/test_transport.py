"""The HTTP layer against a scripted server: which failures are retried, and how refusals read."""

import socket

import pytest

from kolejka.client import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    KolejkaClient,
    LeaseLost,
    NotFinished,
    NotFound,
    ServerError,
)
from kolejka.client.blobs import file_digest
from kolejka.client.transport import Transport
from kolejka.common import Task

from .stub import Reply, Stub

TASK = {"key": "t-1", "state": "queued", "task": {"image": "busybox", "args": ["true"]}}


@pytest.fixture
def stub():
    server = Stub()
    yield server
    server.close()


def fast(url: str, **options) -> KolejkaClient:
    return KolejkaClient(url, token="secret", backoff=0.001, **options)


def test_it_retries_a_read_after_5xx_answers(stub):
    stub.replies = [Reply(503), Reply(502), Reply(500), Reply(200, TASK)]
    assert fast(stub.url).task("t-1").key == "t-1"
    assert [seen.method for seen in stub.seen] == ["GET"] * 4


def test_it_gives_up_after_the_last_retry(stub):
    stub.replies = [Reply(500, {"code": "error", "detail": "database is down"})] * 3
    with pytest.raises(ServerError, match="database is down"):
        fast(stub.url, retries=2).task("t-1")
    assert len(stub.seen) == 3


def test_it_repeats_a_submission_the_server_may_have_acted_on_under_the_same_key(stub):
    stub.replies = [Reply(500, {"code": "error", "detail": "boom"}), Reply(201, TASK)]
    task = Task.from_dict({"image": "busybox", "args": ["true"]})
    assert fast(stub.url).submit(task).key == "t-1"
    assert [seen.method for seen in stub.seen] == ["POST", "POST"]
    keys = {seen.headers["Idempotency-Key"] for seen in stub.seen}
    assert len(keys) == 1 and keys != {""}  # the server finds the first copy's task by it


def test_it_does_not_repeat_a_batch_the_server_may_have_acted_on(stub):
    stub.replies = [Reply(500, {"code": "error", "detail": "boom"})]
    with pytest.raises(ServerError):
        fast(stub.url).submit_batch([Task.from_dict({"image": "busybox", "args": ["true"]})])
    assert [seen.method for seen in stub.seen] == ["POST"]


def test_it_repeats_a_submission_refused_with_503(stub):
    stub.replies = [Reply(503, headers={"Retry-After": "0"}), Reply(201, TASK)]
    task = Task.from_dict({"image": "busybox", "args": ["true"]})
    assert fast(stub.url).submit(task).key == "t-1"
    assert [seen.method for seen in stub.seen] == ["POST", "POST"]


def test_it_sends_the_token(stub):
    stub.replies = [Reply(200, TASK)]
    fast(stub.url).task("t-1")
    assert stub.seen[0].headers["Authorization"] == "Token secret"
    assert stub.seen[0].path == "/api/v1/tasks/t-1/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_says_in_one_line_when_the_server_cannot_be_reached():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionFailed) as caught:
        fast(url, retries=2).task("t-1")
    message = str(caught.value)
    assert "\n" not in message
    assert url in message and "refused" in message.lower() and "tried 3 times" in message


def test_it_repeats_even_a_submission_when_the_connection_was_never_opened():
    url = f"http://127.0.0.1:{free_port()}"
    task = Task.from_dict({"image": "busybox", "args": ["true"]})
    with pytest.raises(ConnectionFailed, match="tried 3 times"):
        fast(url, retries=2).submit(task)


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (
            Reply(
                400,
                {
                    "code": "invalid",
                    "detail": "unknown size unit 'X'",
                    "field": "task.limits.memory",
                },
            ),
            BadRequest,
            "task.limits.memory: unknown size unit 'X'",
        ),
        (
            Reply(
                400,
                {
                    "code": "invalid",
                    "detail": "limits.memory: bad (got '1X')",
                    "field": "task.limits.memory",
                },
            ),
            BadRequest,
            "^limits.memory: bad",
        ),
        (
            Reply(401, {"code": "authentication_failed", "detail": "Invalid token."}),
            AuthenticationFailed,
            "Invalid token",
        ),
        (Reply(404, {"code": "not_found", "detail": "No such task."}), NotFound, "No such task"),
        (Reply(409, {"code": "lease_lost", "detail": "The lease expired."}), LeaseLost, "expired"),
        (
            Reply(409, {"code": "not_finished", "detail": "running", "state": "running"}),
            NotFinished,
            "running",
        ),
    ],
)
def test_it_translates_refusals_into_errors_naming_the_field(stub, reply, error, message):
    stub.replies = [reply]
    with pytest.raises(error, match=message) as caught:
        fast(stub.url).task("t-1")
    assert caught.value.status == reply.status
    assert len(stub.seen) == 1  # a refusal is not retried


def test_it_says_when_the_url_is_not_a_kolejka_server(stub):
    stub.replies = [Reply(404, b"<html>nginx</html>", {"Content-Type": "text/html"})]
    with pytest.raises(NotFound, match=r"not a kolejka error; is http://127.0.0.1:.* the kolejka"):
        fast(stub.url).task("t-1")


def test_it_fetches_a_new_token_when_the_old_one_is_refused(stub):
    stub.replies = [
        Reply(401, {"code": "authentication_failed", "detail": "Invalid token."}),
        Reply(200, {"token": "fresh", "username": "alice", "role": "client"}),
        Reply(200, TASK),
    ]
    client = KolejkaClient(stub.url, token="old", username="alice", password="pw", backoff=0.001)
    assert client.task("t-1").key == "t-1"
    assert [seen.headers.get("Authorization") for seen in stub.seen] == [
        "Token old",
        None,
        "Token fresh",
    ]


def test_it_does_not_loop_on_a_wrong_password(stub):
    refusal = {"code": "authentication_failed", "detail": "Wrong user name or password."}
    stub.replies = [Reply(401, refusal)] * 3
    client = KolejkaClient(stub.url, username="alice", password="wrong", backoff=0.001)
    with pytest.raises(AuthenticationFailed, match="Wrong user name or password"):
        client.task("t-1")
    assert len(stub.seen) == 1


def test_it_builds_urls_under_the_api_prefix():
    assert Transport("http://h:1/").url("tasks/") == "http://h:1/api/v1/tasks/"


def test_it_skips_the_upload_of_content_the_server_already_holds(stub, tmp_path):
    (tmp_path / "f").write_bytes(b"known")
    stub.replies = [Reply(200)]
    blob = fast(stub.url).put_blob(tmp_path / "f")
    assert [(seen.method, seen.path) for seen in stub.seen] == [
        ("HEAD", f"/api/v1/blobs/{blob.reference}/")
    ]


def test_it_uploads_new_content_with_its_hash(stub, tmp_path):
    (tmp_path / "f").write_bytes(b"new")
    stub.replies = [Reply(404, {"code": "not_found", "detail": "no such blob"})]
    client = fast(stub.url)
    reference = file_digest(tmp_path / "f").reference
    stub.replies.append(Reply(201, {"reference": reference, "size": 3}))
    blob = client.put_blob(tmp_path / "f")
    stub_post = stub.seen[1]
    assert (stub_post.method, stub_post.body) == ("POST", b"new")
    assert stub_post.headers["X-Kolejka-Sha256"] == blob.reference
