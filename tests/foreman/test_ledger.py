"""The node's books: free capacity and distinct cores and GPUs per running task."""

import threading

from kolejka.common import Capacity, Demand, Task
from kolejka.foreman.ledger import Ledger
from kolejka.worker import Placement

NODE = Capacity(cpus=4, memory=8 * 2**30, gpus=2, workspace=2**30, resources={"licence": 1})
TAGS = frozenset({"gpu:a100"})


def demand(**fields):
    return Demand.of(Task.from_dict({"image": "i", "args": ["a"], **fields}))


def ledger():
    return Ledger(NODE, TAGS, cores=[0, 1, 2, 3], gpus=[0, 1])


def test_it_gives_each_task_its_own_cores_and_gpus():
    books = ledger()
    first = books.reserve(demand(limits={"cpus": 2, "gpus": 1}))
    second = books.reserve(demand(limits={"cpus": 2, "gpus": 1}))
    assert first == Placement(cpus=(0, 1), gpus=(0,))
    assert second == Placement(cpus=(2, 3), gpus=(1,))
    assert books.reserve(demand()) is None
    assert books.free().cpus == 0


def test_it_returns_cores_and_capacity_on_release():
    books = ledger()
    wanted = demand(limits={"cpus": 3, "memory": "2G"}, resources={"licence": 1})
    placement = books.reserve(wanted)
    assert books.free().memory == 6 * 2**30
    assert books.free().resources["licence"] == 0
    books.release(wanted, placement)
    assert books.free() == NODE
    assert books.idle


def test_it_runs_an_exclusive_task_alone():
    books = ledger()
    alone = demand(exclusive=True)
    held = books.reserve(demand())
    assert books.reserve(alone) is None
    books.release(demand(), held)
    placement = books.reserve(alone)
    assert placement == Placement(cpus=(0,))
    assert books.reserve(demand()) is None
    books.release(alone, placement)
    assert books.reserve(demand()) is not None


def test_it_refuses_tasks_needing_tags_the_node_lacks():
    assert ledger().reserve(demand(requires=["gpu:h100"])) is None


def test_it_never_hands_a_core_to_two_tasks_at_once():
    books = Ledger(Capacity(cpus=64, memory=2**40), frozenset(), cores=range(64), gpus=[])
    start = threading.Barrier(8)
    got = []

    def grab():
        start.wait()
        for _ in range(8):
            got.append(books.reserve(demand()))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cores = [core for placement in got for core in placement.cpus]
    assert sorted(cores) == list(range(64))
