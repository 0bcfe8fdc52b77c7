"""Blobs: content-addressed uploads and downloads, per-user access without an existence oracle,
size cap, quota, garbage collection."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import subprocess
import tarfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .flows import claim, finish, register, spec, submit, upload
from .harness import BIN, Api, Server, Template, base_env, manage, serve
from .s3 import S3, moto_server


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def in_s3(server: Server) -> bool:
    return server.env.get("KOLEJKA_BLOB_STORE") == "s3"


def temp_files(server: Server) -> list[str]:
    """What the server's store holds in its temporary place: uploads in flight, or left."""
    if in_s3(server):
        return S3(server.env["KOLEJKA_S3_ENDPOINT"]).keys(server.env, "tmp/")
    folder = server.data / "blobs" / "tmp"
    return [entry.name for entry in folder.iterdir()] if folder.exists() else []


def contents(server: Server, reference: str) -> list[str]:
    """Where the server's store holds the content `reference`."""
    if in_s3(server):
        return S3(server.env["KOLEJKA_S3_ENDPOINT"]).keys(server.env, f"sha256/{reference}")
    return [str(path) for path in (server.data / "blobs").rglob(reference)]


def test_it_stores_and_returns_a_blob_by_its_sha256(stored: Server):
    server = stored
    alice = server.api("alice")
    content = bytes(range(256)) * 1000
    first = alice.post("blobs/", data=content, headers={"X-Kolejka-Sha256": sha(content)})
    assert first.status_code == 201
    assert first.json() == {"reference": sha(content), "size": len(content)}
    assert alice.post("blobs/", data=content).status_code == 200
    head = alice.head(f"blobs/{sha(content)}/")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(content))
    got = alice.get(f"blobs/{sha(content)}/")
    assert got.content == content and got.headers["ETag"] == f'"{sha(content)}"'
    assert temp_files(server) == []


def test_it_stores_a_chunked_upload_and_bundles_it(stored: Server):
    server = stored
    alice = server.api("alice")
    parts = [b"a" * 1000, b"b" * 1000]
    answer = alice.post("blobs/", data=iter(parts))
    assert answer.status_code == 201 and answer.json()["size"] == 2000
    assert alice.get(f"blobs/{sha(b''.join(parts))}/").content == b"".join(parts)
    bundle = alice.post("blobs/bundle/", json={"references": [sha(b"".join(parts))]})
    with tarfile.open(fileobj=io.BytesIO(bundle.content)) as tar:
        member = tar.extractfile(sha(b"".join(parts)))
        assert member is not None and member.read() == b"".join(parts)


def test_it_is_no_oracle_for_content_other_users_stored(stored: Server):
    server = stored
    alice, bob = server.api("alice"), server.api("bob")
    content = b"alice's homework\n"
    upload(alice, content)
    assert bob.head(f"blobs/{sha(content)}/").status_code == 404
    assert bob.get(f"blobs/{sha(content)}/").json()["code"] == "not_found"
    # Bob's own upload of the same content looks like new content to him, and then is his.
    assert bob.post("blobs/", data=content).status_code == 201
    assert bob.get(f"blobs/{sha(content)}/").content == content


def test_it_lets_a_task_owner_read_its_results_and_the_foreman_its_inputs(server: Server):
    alice, bob, fred, gina = (server.api(name) for name in ("alice", "bob", "fred", "gina"))
    source = upload(alice, b"input")
    other = upload(alice, b"not in any task")
    task = submit(alice, files={"in": {"reference": source}})
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]["id"]
    assert fred.get(f"blobs/{source}/").content == b"input"
    assert fred.head(f"blobs/{other}/").status_code == 404
    assert gina.head(f"blobs/{source}/").status_code == 404
    output = upload(fred, b"output")
    finish(fred, lease, files={"out": {"reference": output}})
    assert alice.get(f"blobs/{output}/").content == b"output"
    assert bob.head(f"blobs/{output}/").status_code == 404
    # The lease ended: the foreman no longer reads the task's inputs.
    assert fred.head(f"blobs/{source}/").status_code == 404
    assert alice.get(f"tasks/{task['key']}/result/").json()["files"] == {
        "out": {"reference": output}
    }


def test_it_refuses_a_result_naming_blobs_the_foreman_did_not_upload(server: Server):
    alice, fred = server.api("alice"), server.api("fred")
    secret = upload(alice, b"alice's")
    submit(alice)
    register(fred, "n1")
    lease = claim(fred, "n1")["lease"]["id"]
    answer = fred.post(f"leases/{lease}/result/", json={"files": {"x": {"reference": secret}}})
    assert answer.status_code == 400 and answer.json()["field"] == "files.x.reference"
    traversal = fred.post(
        f"leases/{lease}/result/", json={"files": {"../x": {"reference": secret}}}
    )
    assert traversal.status_code == 400 and traversal.json()["field"] == "files.../x"


def test_it_refuses_content_that_does_not_match_the_given_hash(stored: Server):
    server = stored
    alice = server.api("alice")
    answer = alice.post("blobs/", data=b"abc", headers={"X-Kolejka-Sha256": sha(b"abd")})
    assert answer.status_code == 400 and answer.json()["field"] == "X-Kolejka-Sha256"
    assert alice.head(f"blobs/{sha(b'abc')}/").status_code == 404
    assert temp_files(server) == []


def test_it_refuses_an_oversize_upload_before_reading_its_body(small_blobs: Server):
    host, port = small_blobs.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    # A gigabyte announced, and no byte of it sent: the answer comes anyway.
    connection.putrequest("POST", "/api/v1/blobs/")
    connection.putheader("Authorization", f"Token {small_blobs.tokens['alice']}")
    connection.putheader("Content-Type", "application/octet-stream")
    connection.putheader("Content-Length", str(2**30))
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413
    assert json.loads(answer.read())["code"] == "too_large"
    connection.close()
    assert temp_files(small_blobs) == []


def test_it_refuses_an_oversize_chunked_upload_and_keeps_no_temp_file(small_stored: Server):
    small_blobs = small_stored
    alice = small_blobs.api("alice")
    answer = alice.post("blobs/", data=iter([b"x" * 1000, b"y" * 1000]))
    assert answer.status_code == 413 and answer.json()["code"] == "too_large"
    assert temp_files(small_blobs) == []
    assert alice.post("blobs/", data=b"x" * 1024).status_code == 201


def test_it_enforces_each_users_quota(small_stored: Server):
    small_blobs = small_stored
    alice, bob = small_blobs.api("alice"), small_blobs.api("bob")
    assert alice.post("blobs/", data=b"a" * 1000).status_code == 201
    assert alice.post("blobs/", data=b"b" * 1000).status_code == 201
    full = alice.post("blobs/", data=b"c" * 100)
    assert full.status_code == 507 and full.json()["code"] == "quota_exceeded"
    chunked = alice.post("blobs/", data=iter([b"d" * 100]))
    assert chunked.status_code == 507
    assert temp_files(small_blobs) == []
    # Content alice already has costs her nothing; bob's quota is his own.
    again = alice.post("blobs/", data=b"a" * 1000, headers={"X-Kolejka-Sha256": sha(b"a" * 1000)})
    assert again.status_code == 200
    assert bob.post("blobs/", data=b"c" * 100).status_code == 201


def test_it_refuses_a_json_body_past_its_cap(small_blobs: Server):
    answer = small_blobs.api("alice").post("tasks/", json={"task": spec(args=["x" * 100_000])})
    assert answer.status_code == 413 and answer.json()["code"] == "too_large"


def test_it_collects_blobs_nothing_references(stored: Server):
    server = stored
    alice = server.api("alice")
    kept = upload(alice, b"used by a task")
    dropped = upload(alice, b"never used")
    task = submit(alice, files={"in": {"reference": kept}})
    assert json.loads(server.manage("collectgarbage", "--json").stdout)["blobs"] == 0
    swept = json.loads(server.manage("collectgarbage", "--grace", "0", "--json").stdout)
    assert swept == {"blobs": 1, "bytes": len(b"never used"), "dry_run": False}
    assert alice.head(f"blobs/{dropped}/").status_code == 404
    assert alice.get(f"blobs/{kept}/").content == b"used by a task"
    alice.delete(f"tasks/{task['key']}/")
    server.manage("collectgarbage", "--grace", "0")
    assert alice.head(f"blobs/{kept}/").status_code == 404
    assert contents(server, kept) == []
    assert temp_files(server) == []


def test_it_refuses_other_media_types_and_inspectors_uploading(server: Server):
    alice, ivan = server.api("alice"), server.api("ivan")
    form = alice.post("blobs/", files={"f": b"x"})
    assert form.status_code == 415 and form.json()["code"] == "unsupported_media_type"
    assert ivan.post("blobs/", data=b"x").status_code == 403


def test_it_streams_a_blob_larger_than_a_part_both_ways(stored: Server):
    alice = stored.api("alice")
    block = bytes(range(256)) * 4096  # 1 MiB
    blocks = 20  # past the S3 store's part size: a multipart upload there
    whole = hashlib.sha256(block * blocks).hexdigest()
    answer = alice.post("blobs/", data=(block for _ in range(blocks)))
    assert answer.status_code == 201 and answer.json() == {"reference": whole, "size": 20 << 20}
    download = alice.get(f"blobs/{whole}/", stream=True)
    assert download.headers["Content-Length"] == str(20 << 20)
    digest, pieces = hashlib.sha256(), 0
    for piece in download.iter_content(1 << 16):
        digest.update(piece)
        pieces += 1
    assert digest.hexdigest() == whole and pieces >= 20
    assert temp_files(stored) == []


def test_it_keeps_every_blob_it_answered_for_while_garbage_collection_races_uploads(
    stored: Server,
):
    alice = stored.api("alice")
    bodies = [f"blob {index}\n".encode() for index in range(150)]
    for body in bodies:
        upload(alice, body)
    collector = subprocess.Popen(
        [str(BIN / "kolejka-server"), "collectgarbage", "--grace", "0", "--json"],
        env=stored.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    answers: list[int] = []

    def upload_again() -> None:
        while collector.poll() is None:
            for body in bodies:
                answers.append(alice.post("blobs/", data=body).status_code)

    uploader = threading.Thread(target=upload_again)
    uploader.start()
    swept = json.loads(collector.communicate(timeout=120)[0])
    uploader.join()
    assert set(answers) <= {200, 201}
    # The race happened: blobs were collected, and some uploads came after their collection.
    assert swept["blobs"] > 0 and 201 in answers
    # No row without its content: a blob the server still lists downloads whole.
    for body in bodies:
        if alice.head(f"blobs/{sha(body)}/").status_code == 200:
            assert alice.get(f"blobs/{sha(body)}/").content == body
    assert temp_files(stored) == []


def test_it_stops_at_start_up_when_the_s3_bucket_does_not_answer(s3: S3, tmp_path: Path):
    settings = {**s3.settings(), "KOLEJKA_S3_BUCKET": "kolejka-no-such-bucket"}
    checked = manage(base_env(tmp_path / "data", None, **settings), "check", check=False)
    assert checked.returncode != 0
    assert "kolejka.E003" in checked.stderr and "kolejka-no-such-bucket" in checked.stderr
    unnamed = {**settings, "KOLEJKA_S3_BUCKET": ""}
    named = manage(base_env(tmp_path / "data", None, **unnamed), "check", check=False)
    assert named.stderr.strip() == (
        "kolejka-server: KOLEJKA_BLOB_STORE=s3 needs KOLEJKA_S3_BUCKET, the bucket's name"
    )


def test_it_stores_content_two_users_upload_at_once(grid: Server):
    users = [grid.api(name) for name in ("alice", "bob", "fred", "gina")]
    for round_ in range(10):
        content = f"the same result file, round {round_}\n".encode()
        barrier = threading.Barrier(len(users))

        def send(api: Api, content: bytes = content, barrier: threading.Barrier = barrier) -> int:
            barrier.wait()
            return api.post("blobs/", data=content).status_code

        with ThreadPoolExecutor(len(users)) as pool:
            answers = list(pool.map(send, users))
        assert answers == [201] * len(users), answers
        for api in users:
            assert api.get(f"blobs/{sha(content)}/").content == content


def test_it_answers_503_while_the_s3_store_does_not_answer(
    templates: dict[str, Template], tmp_path: Path
):
    with (
        moto_server() as own,
        serve(templates["sqlite"], tmp_path / "data", **own.settings()) as server,
    ):
        alice = server.api("alice")
        kept = upload(alice, b"stored before the store went away")
        own.stop()  # the S3 server goes away; the kolejka server goes on
        refused = alice.post("blobs/", data=b"new content")
        assert refused.status_code == 503 and refused.json()["code"] == "unavailable"
        assert refused.headers["Retry-After"].isdigit()
        lost = alice.get(f"blobs/{kept}/")
        assert lost.status_code == 503 and lost.json()["code"] == "unavailable"
        assert alice.head(f"blobs/{kept}/").status_code == 200  # the database still knows it


def test_it_sweeps_what_uploads_that_died_with_their_process_left(stored: Server):
    if in_s3(stored):
        client = S3(stored.env["KOLEJKA_S3_ENDPOINT"]).client
        bucket, prefix = stored.env["KOLEJKA_S3_BUCKET"], stored.env["KOLEJKA_S3_PREFIX"]
        client.put_object(Bucket=bucket, Key=f"{prefix}/tmp/upload-dead", Body=b"half")
        # Named as the S3 store names its uploads, with the time it began.
        parts = f"{prefix}/tmp/upload-{int(time.time())}-{uuid.uuid4().hex}"
        client.create_multipart_upload(Bucket=bucket, Key=parts)
    else:
        (stored.data / "blobs" / "tmp").mkdir(parents=True, exist_ok=True)
        (stored.data / "blobs" / "tmp" / "upload-dead").write_bytes(b"half")
    assert len(temp_files(stored)) == (2 if in_s3(stored) else 1)
    stored.manage("collectgarbage")  # within the grace: a live upload may still be writing
    assert len(temp_files(stored)) == (2 if in_s3(stored) else 1)
    stored.manage("collectgarbage", "--grace", "0")
    assert temp_files(stored) == []
