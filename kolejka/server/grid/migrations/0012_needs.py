"""Claims read queues by needs (`needs.py`) instead of the Backlog counter, and compare the GPU
memory in SQL: fill `needs` and `need_gpu_memory` for the tasks that may still be claimed."""

from typing import Any

from django.db import migrations, models

from kolejka.common.units import parse_memory
from kolejka.server.grid import needs

# Tasks that may be queued again (a run again: `transitions.rerun`) need theirs as well: every
# task that required tags or resources, and every task not final for the GPU memory.
FINAL = ("done", "failed", "cancelled")


def fill(apps: Any, schema_editor: Any) -> None:
    Task = apps.get_model("kolejka", "Task")
    rows = Task.objects.filter(models.Q(labelled=True) | ~models.Q(state__in=FINAL))
    changed = []
    for task in rows.only("id", "spec").iterator(chunk_size=1000):
        spec = task.spec or {}
        task.needs = needs.key(spec.get("requires") or (), spec.get("resources") or {})
        gpu_memory = (spec.get("limits") or {}).get("gpu_memory")
        task.need_gpu_memory = None if gpu_memory is None else parse_memory(gpu_memory)
        changed.append(task)
        if len(changed) == 1000:
            Task.objects.bulk_update(changed, ["needs", "need_gpu_memory"])
            changed = []
    Task.objects.bulk_update(changed, ["needs", "need_gpu_memory"])


class Migration(migrations.Migration):
    dependencies = [
        ("kolejka", "0011_logs"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="need_gpu_memory",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="task",
            name="needs",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.RemoveField(model_name="task", name="labelled"),
        migrations.RemoveIndex(model_name="task", name="task_queued_in_order"),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("state", "queued")),
                fields=["owner", "priority", "needs", "-rank", "id"],
                name="task_queued_by_needs",
            ),
        ),
        migrations.DeleteModel(name="Backlog"),
    ]
