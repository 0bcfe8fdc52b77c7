"""Images on the node, against the real docker engine: pull, load from a tarball, trim LRU."""

import contextlib
import io
import os
import tarfile
import uuid

import docker
import pytest

from kolejka.foreman.images import ImageCache, ImageUnavailableError

# A registry that refuses at once: pulls fail fast, as on a grid without one.
NOWHERE = "localhost:1/kolejka-test"


@pytest.fixture
def client():
    return docker.from_env()


def tiny_rootfs(payload_size=0):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = os.urandom(payload_size) + b"hello\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def make_image(client):
    made = []

    def make(payload_size=0):
        name = f"{NOWHERE}/img-{uuid.uuid4().hex[:10]}:v1"
        client.api.import_image_from_data(
            tiny_rootfs(payload_size), repository=name.split(":v1")[0], tag="v1"
        )
        made.append(name)
        return name

    yield make
    for name in made:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(name, force=True)


def saved(client, name, path):
    with open(path, "wb") as handle:
        for chunk in client.images.get(name).save(named=True):
            handle.write(chunk)
    return path


def test_it_uses_an_image_that_is_present(client, make_image, tmp_path):
    name = make_image()
    cache = ImageCache(client, tmp_path / "images.json", budget=2**30)
    found = cache.ensure(name)  # the inspect document the task's worker takes
    assert found["Id"] == client.images.get(name).id and name in found["RepoTags"]
    assert cache.trim() == []  # not brought by the cache: never its to remove


def test_it_says_what_it_tried_when_an_image_cannot_be_had(client, tmp_path):
    cache = ImageCache(client, tmp_path / "images.json", budget=2**30, fetch_tarball=lambda n: None)
    with pytest.raises(
        ImageUnavailableError, match=r"pulling it failed .*connection refused.*no tarball"
    ):
        cache.ensure(f"{NOWHERE}/missing-{uuid.uuid4().hex[:8]}:v1")


def test_it_loads_the_servers_tarball_when_pulling_fails(client, make_image, tmp_path):
    name = make_image()
    tarball = saved(client, name, tmp_path / "image.tar")
    client.images.remove(name, force=True)
    asked = []

    def fetch(wanted):
        asked.append(wanted)
        return tarball

    cache = ImageCache(client, tmp_path / "images.json", budget=2**30, fetch_tarball=fetch)
    found = cache.ensure(name)
    assert asked == [name]
    assert found["Id"] == client.images.get(name).id


def test_it_refuses_an_image_above_the_tasks_image_limit(client, make_image, tmp_path):
    name = make_image(payload_size=100_000)
    cache = ImageCache(client, tmp_path / "images.json", budget=2**30)
    with pytest.raises(ImageUnavailableError, match="more than the task's image limit"):
        cache.ensure(name, max_size=10_000)


def test_it_trims_the_least_recently_used_images_it_brought(client, make_image, tmp_path):
    names = [make_image(payload_size=50_000) for _ in range(3)]
    tarballs = {name: saved(client, name, tmp_path / f"{i}.tar") for i, name in enumerate(names)}
    for name in names:
        client.images.remove(name, force=True)
    cache = ImageCache(client, tmp_path / "images.json", budget=120_000, fetch_tarball=tarballs.get)
    for name in names:
        cache.ensure(name)
    cache.ensure(names[0])  # used again: now the most recent
    removed = cache.trim(in_use={names[1]})
    assert removed == [names[2]]
    assert client.images.get(names[0]) and client.images.get(names[1])
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(names[2])


def test_it_remembers_what_it_brought_across_restarts(client, make_image, tmp_path):
    name = make_image(payload_size=50_000)
    tarball = saved(client, name, tmp_path / "image.tar")
    client.images.remove(name, force=True)
    ImageCache(client, tmp_path / "images.json", budget=0, fetch_tarball=lambda n: tarball).ensure(
        name
    )
    assert ImageCache(client, tmp_path / "images.json", budget=0).trim() == [name]
