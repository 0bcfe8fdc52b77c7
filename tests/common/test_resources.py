"""Whether a task fits a node's free capacity: the rule the server and the foreman share."""

import pytest

from kolejka.common import Capacity, Demand, Limits, SpecError, Task

NODE = Capacity(cpus=4, memory=8 * 2**30, gpus=1, workspace=2**30, resources={"licence": 1})
TAGS = frozenset({"gpu:a100", "cpu:x86"})


def task(**fields):
    return Task.from_dict({"image": "i", "args": ["a"], **fields})


def test_it_fits_a_task_within_capacity_and_tags():
    demand = Demand.of(task(limits={"cpus": 2, "memory": "4G"}, requires=["gpu:a100"]))
    assert demand.fits(NODE, TAGS, idle=False)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"limits": {"cpus": 8}}, "needs cpus 8, 4 free"),
        ({"limits": {"memory": "9G"}}, "needs memory"),
        ({"limits": {"gpus": 2}}, "needs gpus 2, 1 free"),
        ({"limits": {"workspace": "2G"}}, "needs workspace"),
        ({"resources": {"licence": 2}}, "needs resource licence x2, 1 free"),
        ({"resources": {"fpga": 1}}, "needs resource fpga x1, 0 free"),
        ({"requires": ["gpu:h100"]}, "node lacks tags gpu:h100"),
    ],
)
def test_it_says_why_a_task_does_not_fit(fields, reason):
    assert reason in Demand.of(task(**fields)).misfit(NODE, TAGS, idle=True)


def test_it_refuses_a_node_whose_gpus_have_less_memory_than_the_task_asks():
    node = Capacity(cpus=4, memory=8 * 2**30, gpus=2, gpu_memory=40 * 2**30)
    big = Demand.of(task(limits={"gpus": 1, "gpu_memory": "80G"}))
    assert big.misfit(node, TAGS, idle=True) == "gpu_memory 80G > 40G"
    assert Demand.of(task(limits={"gpus": 1, "gpu_memory": "40G"})).fits(node, TAGS, idle=True)
    assert big.misfit(NODE, TAGS, idle=True) == "gpu_memory 80G > none"


def test_it_keeps_the_gpu_memory_of_what_is_left():
    node = Capacity(cpus=4, gpus=2, gpu_memory=40 * 2**30)
    left = node.minus(Demand.of(task(limits={"gpus": 1, "gpu_memory": "40G"})).capacity)
    assert (left.gpus, left.gpu_memory) == (1, 40 * 2**30)
    assert Capacity.from_dict(node.to_dict()) == node


def test_it_starts_exclusive_tasks_only_on_idle_nodes():
    demand = Demand.of(task(exclusive=True))
    assert not demand.fits(NODE, TAGS, idle=False)
    assert demand.fits(NODE, TAGS, idle=True)


def test_it_counts_unset_limits_at_the_node_defaults():
    demand = Demand.of(task(), Limits(cpus=2, memory=2**30, workspace=2**20))
    assert demand.capacity == Capacity(cpus=2, memory=2**30, workspace=2**20)
    assert Demand.of(task()).capacity.cpus == 1


def test_it_subtracts_capacity():
    left = NODE.minus(Demand.of(task(limits={"cpus": 3}, resources={"licence": 1})).capacity)
    assert (left.cpus, left.resources["licence"]) == (1, 0)


def test_it_reads_capacity_with_units_and_refuses_unknown_fields():
    assert Capacity.from_dict({"cpus": "2", "memory": "1G"}).memory == 2**30
    with pytest.raises(SpecError) as caught:
        Capacity.from_dict({"cpu": 2})
    assert caught.value.field == "capacity.cpu"
    assert Capacity.from_dict(NODE.to_dict()) == NODE


def test_it_clamps_a_demand_for_more_cpus_than_a_node_has_to_its_cores():
    wide = Demand.of(task(limits={"cpus": 64, "memory": "1G"}))
    assert wide.clamped(4).capacity == Capacity(cpus=4, memory=2**30)
    assert wide.clamped(4).fits(NODE, TAGS, idle=True)
    narrow = Demand.of(task(limits={"cpus": 2}))
    assert narrow.clamped(4) is narrow  # within the cores: unchanged


def test_it_books_the_whole_node_for_an_exclusive_task_and_gives_capacity_back():
    assert Demand.of(task(exclusive=True)).booking(NODE) == NODE
    assert Demand.of(task(limits={"cpus": 2})).booking(NODE) == Capacity(cpus=2)
    assert (
        NODE.minus(Capacity(cpus=3, resources={"licence": 1})).plus(
            Capacity(cpus=3, resources={"licence": 1})
        )
        == NODE
    )
