"""Result and task folders: what the server sends is written inside RESULT_DIR and nowhere else,
and a blob is written only when its content matches its reference."""

import hashlib
import os

import pytest

from kolejka.client import KolejkaClient, LocalFileError, TransferError
from kolejka.client.folders import safe_target
from kolejka.common import SpecError

from .stub import Reply, Stub

CONTENT = b"hello\n"
REFERENCE = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def stub():
    server = Stub()
    yield server
    server.close()


def client(stub: Stub) -> KolejkaClient:
    return KolejkaClient(stub.url, token="t", backoff=0.001, retries=2)


def result(files):
    return {"status": "OK", "result": 0, "files": files, "stdout": "out.txt"}


def test_it_writes_a_result_folder_with_its_files_and_paths(stub, tmp_path):
    stub.replies = [
        Reply(
            200, result({"out.txt": {"reference": REFERENCE}, "d/e.txt": {"reference": REFERENCE}})
        ),
        Reply(200, CONTENT),
        Reply(200, CONTENT),
    ]
    written = client(stub).fetch_result("t-1", tmp_path / "res")
    assert (tmp_path / "res" / "out.txt").read_bytes() == CONTENT
    assert (tmp_path / "res" / "d" / "e.txt").read_bytes() == CONTENT
    assert written.files["d/e.txt"].path == "d/e.txt"
    assert '"path": "d/e.txt"' in (tmp_path / "res" / "kolejka_result.json").read_text()
    assert sorted(os.listdir(tmp_path / "res")) == ["d", "kolejka_result.json", "out.txt"]


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/../../x", "kolejka_result.json"])
def test_it_refuses_result_file_names_that_leave_the_folder(stub, tmp_path, name):
    stub.replies = [Reply(200, result({name: {"reference": REFERENCE}}))]
    with pytest.raises(SpecError) as caught:
        client(stub).fetch_result("t-1", tmp_path / "res")
    assert caught.value.field == f"files.{name}"
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "res").exists() or os.listdir(tmp_path / "res") == []


def test_it_does_not_write_through_a_symlink_in_the_result_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "res").mkdir()
    os.symlink(outside, tmp_path / "res" / "d")
    with pytest.raises(LocalFileError, match="is a symlink; refusing to write through it"):
        safe_target((tmp_path / "res").resolve(), "d/x")
    assert os.listdir(outside) == []


def test_it_replaces_a_symlink_in_a_files_place_instead_of_following_it(stub, tmp_path):
    (tmp_path / "res").mkdir()
    os.symlink(tmp_path / "victim", tmp_path / "res" / "out.txt")
    stub.replies = [Reply(200, result({"out.txt": {"reference": REFERENCE}})), Reply(200, CONTENT)]
    client(stub).fetch_result("t-1", tmp_path / "res")
    assert not (tmp_path / "victim").exists()
    assert not (tmp_path / "res" / "out.txt").is_symlink()
    assert (tmp_path / "res" / "out.txt").read_bytes() == CONTENT


def test_it_refuses_a_blob_whose_content_does_not_match_its_reference(stub, tmp_path):
    stub.replies = [Reply(200, b"forged\n")]
    with pytest.raises(TransferError, match=r"sha256 is .*nothing was written"):
        client(stub).get_blob(REFERENCE, tmp_path / "file")
    assert os.listdir(tmp_path) == []


def test_it_restarts_a_download_that_broke_off(stub, tmp_path):
    stub.replies = [Reply(200, CONTENT, cut_after=2), Reply(200, CONTENT)]
    blob = client(stub).get_blob(REFERENCE, tmp_path / "file")
    assert blob.size == len(CONTENT)
    assert (tmp_path / "file").read_bytes() == CONTENT
    assert os.listdir(tmp_path) == ["file"]
