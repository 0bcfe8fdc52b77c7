"""How exact the figures are that a judge inside a task reads through the original kolejka's
in-task protocol, with the original's own client (``kolejka.observer.runner``, what kolejka-judge
calls), for programs whose use is known: ``kolejka-probe cpu 1`` (1.000 s of CPU) and
``kolejka-probe mem 100`` (100 MiB touched), each run RUNS times in nested sessions of one root
task of the judge image, through an observer.

    python bench/in_task_accuracy.py [RUNS]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _worker import config, emit, image, observer, summary

from kolejka.worker import execute
from tests.judge.original import JUDGE_IMAGE, judge_library

MiB = 2**20
PROGRAM = """
import json, sys
sys.path.insert(0, "kolejka-judge")
import kolejka.observer.runner as runner
from kolejka.common import KolejkaLimits

out = {"cpu": [], "memory": []}
for _ in range(int(sys.argv[1])):
    done = runner.run(["./kolejka-probe", "cpu", "1"], limits=KolejkaLimits(cpus=1, time="20s"))
    out["cpu"].append(done.stats.cpu.usage.total_seconds())
    done = runner.run(["./kolejka-probe", "mem", "100"], limits=KolejkaLimits(memory="256M"))
    out["memory"].append(done.stats.memory.max_usage)
print(json.dumps(out))
"""


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with image() as busybox, tempfile.TemporaryDirectory(prefix="kolejka-bench-") as temp:
        task = Path(temp) / "task"
        task.mkdir()
        judge_library(task)
        (task / "program.py").write_text(PROGRAM)
        with open(task / "kolejka-probe", "wb") as probe:
            command = ["docker", "run", "--rm", "--network", "none", busybox]
            subprocess.run([*command, "cat", "/bin/kolejka-probe"], stdout=probe, check=True)
        files = ("program.py", "kolejka-judge", "kolejka-probe")
        (task / "kolejka_task.json").write_text(
            json.dumps(
                {
                    "image": JUDGE_IMAGE,
                    "args": ["python3", "program.py", str(runs)],
                    "files": {name: name for name in files},
                    "stdout": "out.json",
                    "stderr": "err.txt",
                    "limits": {"memory": "512M", "time": f"{10 + 5 * runs}s"},
                }
            )
        )
        with observer() as socket:
            settings = config(observer=socket, root_images=(JUDGE_IMAGE,))
            result = execute(task, Path(temp) / "result", config=settings)
        assert result.status == "OK", result.to_dict()
        err = (Path(temp) / "result" / "err.txt").read_text()
        assert result.result == 0, err
        # The probes print to the same stdout; the program's figures are the last line.
        out = json.loads((Path(temp) / "result" / "out.json").read_text().splitlines()[-1])
        shutil.rmtree(task)
    cpu_error = [(value - 1.0) * 100 for value in out["cpu"]]
    memory_error = [(value - 100 * MiB) / MiB for value in out["memory"]]
    emit(
        {
            "benchmark": "in_task_accuracy",
            "runs": runs,
            "cpu_1s_error_percent": summary(cpu_error, 3),
            "cpu_within_1_percent": sum(abs(error) <= 1 for error in cpu_error),
            "memory_100mib_error_mib": summary(memory_error, 3),
            "memory_within_2_mib": sum(abs(error) <= 2 for error in memory_error),
            "goals": {"cpu_error_percent": 1.0, "memory_error_mib": 2.0},
        }
    )


if __name__ == "__main__":
    main()
