#!/usr/bin/env python3
# A kolejka-judge judge for the tests' C++ problem, written against kolejka-judge's documented
# API: build the solution with g++, run it on the test's input under the test's limits, compare
# with the hint, keep the logs.
import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "kolejka-judge"))
    from kolejka.judge import main

    main(__file__)
from kolejka.judge.parse import parse_memory, parse_time
from kolejka.judge.tasks import (
    CollectLogsTask,
    SingleIOTask,
    SolutionBuildGXXTask,
    SolutionPrepareTask,
    SystemPrepareTask,
)


def judge(args):
    args.add_steps(
        system=SystemPrepareTask(default_logs=False),
        source=SolutionPrepareTask(source=args.solution),
        builder=SolutionBuildGXXTask(standard="c++17", limit_real_time="20s"),
    )
    args.add_steps(
        io=SingleIOTask(
            input_path=args.test["input"],
            hint_path=args.test["hint"],
            limit_cores=1,
            limit_time=parse_time(args.test.get("time", "1s")),
            limit_memory=parse_memory(args.test.get("memory", "256M")),
        )
    )
    args.add_steps(logs=CollectLogsTask())
    result = args.run()
    print(f"Result {result.status} on test {args.id}.")
