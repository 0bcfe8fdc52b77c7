"""The grid's tables. The rules that move rows between states live in `claims`, `leases`,
`submit` and `blobs`; these classes hold the data and the indexes those rules depend on."""

from __future__ import annotations

import secrets
import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q

from kolejka.common.states import TaskState


class Role(models.TextChoices):
    CLIENT = "client"
    FOREMAN = "foreman"
    INSPECTOR = "inspector"
    ADMIN = "admin"


class User(AbstractUser):
    """A user of the grid with one role; `quota` (bytes of blobs) overrides KOLEJKA_USER_QUOTA."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CLIENT)
    quota = models.BigIntegerField(null=True, blank=True)

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.INSPECTOR, Role.ADMIN)


class Blob(models.Model):
    """One stored content, once however many users uploaded it. The file is in the blob store."""

    reference = models.CharField(max_length=64, primary_key=True)
    size = models.BigIntegerField()
    created = models.DateTimeField(auto_now_add=True)
    # Garbage collection spares blobs touched (uploaded, submitted) within KOLEJKA_BLOB_GRACE, so a
    # blob uploaded for a task about to be submitted is not collected before the submission.
    touched = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.reference


class BlobGrant(models.Model):
    """`user` uploaded `blob`: they may read it, and it counts in their quota."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="grants")
    blob = models.ForeignKey(Blob, on_delete=models.CASCADE, related_name="grants")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = (models.UniqueConstraint(fields=["user", "blob"], name="grant_once"),)


class Image(models.Model):
    """A ``docker save`` tarball stored as a blob under an image name, for registry-less grids."""

    name = models.CharField(max_length=255, unique=True)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="images")
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class Node(models.Model):
    """A grid node as its foreman registered it. `problems` are what its own health check found
    last (`health.py`): a node with any claims nothing until it reports none."""

    name = models.CharField(max_length=255, unique=True)
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="nodes")
    capacity = models.JSONField(default=dict)
    tags = models.JSONField(default=list)
    defaults = models.JSONField(default=dict)
    slots = models.PositiveIntegerField(default=1)
    draining = models.BooleanField(default=False)
    problems = models.JSONField(default=list, blank=True)
    checked = models.DateTimeField(null=True, blank=True)  # when it last reported its health
    last_seen = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @property
    def takes_tasks(self) -> bool:
        """Whether the node may be given tasks now: not draining, and healthy."""
        return not self.draining and not self.problems


def new_batch_key() -> str:
    return "b-" + secrets.token_hex(10)


def new_task_key() -> str:
    return "t-" + secrets.token_hex(10)


class BatchState(models.TextChoices):
    OPEN = "open"  # pages of tasks are being added; none of them is visible or claimable yet
    SEALED = "sealed"  # complete: its tasks are queued and run


class Batch(models.Model):
    """Tasks submitted together. An open batch takes pages of tasks (`batches.add_page`), which
    stay `STAGED` until it is sealed: then all of them are queued in one transaction."""

    key = models.CharField(max_length=32, unique=True, default=new_batch_key)
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="batches")
    created = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=8, choices=BatchState.choices, default=BatchState.SEALED)
    size = models.PositiveIntegerField(default=0)  # tasks added so far: the next position
    sealed = models.DateTimeField(null=True, blank=True)
    # Where to tell of its completion (`notify`: the ``notify`` list of kolejka.common), and when
    # it was told last: set in the transaction that made its last task final, cleared by a re-run.
    notify = models.JSONField(null=True, blank=True)
    completed = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return self.key


# The states are the API's, from kolejka.common; the labels are the admin's.
State = TaskState
# A task of a batch that is still open: the server's own state, never shown by the API (which
# hides the task), never claimed (claims read only `queued` rows).
STAGED = "staged"
STATE_CHOICES = [(str(state), state.name.capitalize()) for state in TaskState]
STATE_CHOICES.append((STAGED, "Staged"))
ACTIVE = tuple(state for state in TaskState if state.active)
FINISHED = tuple(state for state in TaskState if state.final)


class Task(models.Model):
    """A submitted task. `spec` is the ``kolejka_task.json`` (files as references), `result`
    the accepted ``kolejka_result.json``. The ``need_*`` columns copy the task's own limits
    (null = unset, the node's default applies) so that claims can pre-filter in SQL."""

    key = models.CharField(max_length=32, unique=True, default=new_task_key)
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="tasks")
    state = models.CharField(max_length=16, choices=STATE_CHOICES, default=State.QUEUED)
    priority = models.IntegerField(default=0)
    # The owner's own order of their queued tasks of one priority (higher first); it never puts
    # a task ahead of another owner's (`claims.py`).
    rank = models.IntegerField(default=0)
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )
    # The dependencies as submitted (`kolejka.common.after`, positions resolved to keys); the
    # ones still awaited are `Dependency` rows.
    after = models.JSONField(default=list, blank=True)
    # The task's place in its batch (0 for the first), which names its result in `batch get`.
    position = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lease = models.ForeignKey(
        "Lease", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    spec = models.JSONField()
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    need_cpus = models.BigIntegerField(null=True, blank=True)
    need_memory = models.BigIntegerField(null=True, blank=True)
    need_gpus = models.BigIntegerField(null=True, blank=True)
    need_workspace = models.BigIntegerField(null=True, blank=True)
    need_gpu_memory = models.BigIntegerField(null=True, blank=True)
    exclusive = models.BooleanField(default=False)
    # The tags it requires and the named resources it takes, as one text (`needs.key`; "" for
    # none): one queue of the claim's index per owner, priority and needs.
    needs = models.TextField(default="", blank=True)
    # After a failed attempt (`retries.py`): no node takes the task before `not_before`, and the
    # node that failed it (`avoid_node`) not before `avoid_until`; `last_failure` says what failed.
    not_before = models.DateTimeField(null=True, blank=True)
    avoid_node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    avoid_until = models.DateTimeField(null=True, blank=True)
    last_failure = models.TextField(null=True, blank=True)
    # Earlier runs of a task run again in place (`transitions.rerun`): their state, error,
    # result and attempts, oldest first. Their output files stay, so the results stay readable.
    history = models.JSONField(default=list, blank=True)
    # A wide task first in line that does not fit its node yet holds `reserved_node`
    # (`reservations.py`): no later task may take the cores it waits for unless it ends by
    # `reserved_start` (null: not known). Other nodes pass over it while `reserved_until` is ahead.
    reserved_node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reserved_start = models.DateTimeField(null=True, blank=True)
    reserved_until = models.DateTimeField(null=True, blank=True)
    # Submitted through the original's API (`views/legacy.py`): its callback says what the
    # original's said (`notify`).
    legacy = models.BooleanField(default=False)
    # The client's own name for its submission (``Idempotency-Key``): the same submission sent
    # again, after a lost answer, finds this task instead of making a second one.
    submission_key = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        constraints = (
            # A batch's tasks in order, once each: pages of a batch cannot overlap.
            models.UniqueConstraint(
                fields=["batch", "position"],
                condition=Q(position__isnull=False),
                name="task_position_once",
            ),
            models.UniqueConstraint(
                fields=["owner", "submission_key"],
                condition=Q(submission_key__isnull=False),
                name="task_submitted_once",
            ),
        )
        indexes = (
            # Claims list the queues (owner, priority, needs) by a loose scan of it, then walk
            # those their node can run in the owner's order (rank, then age): bounded index
            # range scans whatever the depth of the queue and however many queued tasks no
            # node can run (claims.py orders by all five columns, so that no planner prefers an
            # index that walks other owners' tasks first). Waiting tasks are not in it: a
            # claim never reads them.
            models.Index(
                fields=["owner", "priority", "needs", "-rank", "id"],
                condition=Q(state="queued"),
                name="task_queued_by_needs",
            ),
            # Whether a batch has tasks left to end (a batch dependency): one index probe per
            # task that ends, not a scan of the batch.
            models.Index(
                fields=["batch"],
                condition=Q(state__in=["waiting", "queued", "assigned", "running", "staged"]),
                name="task_unfinished_by_batch",
            ),
            # Fair share counts each owner's running tasks: as many rows as run, not as queue.
            models.Index(
                fields=["owner"],
                condition=Q(state__in=["assigned", "running"]),
                name="task_active_by_owner",
            ),
            # A user's own list, newest first, optionally by state.
            models.Index(fields=["owner", "state", "id"], name="task_by_owner_state"),
            models.Index(fields=["owner", "id"], name="task_by_owner"),
            # Claims over many owners at once, statistics, the oldest queued task.
            models.Index(fields=["state", "id"], name="task_by_state"),
        )

    def __str__(self) -> str:
        return self.key


class Dependency(models.Model):
    """`task` waits for `on_task` (or for every task of `on_batch`) to end as `when` says
    (`dependencies.py`). A row is an awaited dependency: it goes when met, and its task is
    queued when it has none left; one that can no longer be met cancels its task."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="awaits")
    on_task = models.ForeignKey(
        Task, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    on_batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    when = models.CharField(max_length=8)

    class Meta:
        indexes = (
            # A task that ends reads its dependents' rows, and a batch's last task its batch's:
            # as many rows as wait on it (the foreign keys' own indexes, named for the reason).
            models.Index(fields=["on_task"], name="dependency_on_task"),
            models.Index(fields=["on_batch"], name="dependency_on_batch"),
        )


class TaskFile(models.Model):
    """A blob a task uses as an input file (`output` false) or its result holds (`output` true).

    Blob access checks go through it ("the owner of a task that references it"), and garbage
    collection keeps every blob that has a row here."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="files")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="uses")
    name = models.CharField(max_length=4096)
    output = models.BooleanField(default=False)

    class Meta:
        indexes = (models.Index(fields=["blob", "task"], name="taskfile_by_blob"),)


class Outcome(models.TextChoices):
    DONE = "done"
    FAILED = "failed"
    RELEASED = "released"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Lease(models.Model):
    """One attempt of a task on a node. Active while `ended` is null and `expires` is ahead."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task = models.ForeignKey(Task, null=True, on_delete=models.SET_NULL, related_name="leases")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="leases")
    attempt = models.PositiveIntegerField()
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()
    ended = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True, default="")

    class Meta:
        indexes = (
            # The reaper looks only at unended leases, by expiry.
            models.Index(fields=["expires"], condition=Q(ended=None), name="lease_open"),
            models.Index(fields=["node"], condition=Q(ended=None), name="lease_open_by_node"),
        )


class LogStream(models.TextChoices):
    STDOUT = "stdout"
    STDERR = "stderr"


class LogChunk(models.Model):
    """A piece of a running task's stdout or stderr, as its node streamed it (`logs.py`):
    `data` at byte `offset` of the stream of the attempt under `lease`. Kept with the task (a
    cancelled, failed or lost attempt's partial output) until its result is accepted, whose
    files then hold the whole output."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+")
    # Not a foreign key: the chunks of a lease outlive its node's removal.
    lease = models.UUIDField()
    stream = models.CharField(max_length=8, choices=LogStream.choices)
    offset = models.BigIntegerField()
    data = models.BinaryField()
    # The node's output cap (or the server's) cut the stream at the end of this chunk.
    truncated = models.BooleanField(default=False)

    class Meta:
        constraints = (
            # A stream's bytes once each: a chunk sent again (a lost answer) is not stored twice;
            # reads walk it in offset order from the one holding the offset asked for.
            models.UniqueConstraint(
                fields=["task", "lease", "stream", "offset"], name="log_chunk_once"
            ),
        )


class Wakeup(models.Model):
    """A wake-up for long-polls in other server processes on SQLite (PostgreSQL uses NOTIFY)."""

    topic = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)


def new_schedule_key() -> str:
    return "c-" + secrets.token_hex(8)


class Missed(models.TextChoices):
    """What a schedule does with the ticks that passed while no server ran them."""

    ONCE = "once"  # one run for all of them, as anacron
    SKIP = "skip"  # none; the next run is the next tick from now


class Schedule(models.Model):
    """A periodic task (`schedules.py`): at each tick of `cron` (five fields, UTC) the server
    queues `spec` as an ordinary task of `owner`. `next_run` is the tick due next; the server
    process that moves it on (one conditional update) is the one that queues the run."""

    key = models.CharField(max_length=32, unique=True, default=new_schedule_key)
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="schedules")
    cron = models.CharField(max_length=200)
    spec = models.JSONField()
    priority = models.IntegerField(default=0)
    missed = models.CharField(max_length=8, choices=Missed.choices, default=Missed.ONCE)
    paused = models.BooleanField(default=False)
    next_run = models.DateTimeField()
    runs = models.PositiveIntegerField(default=0)
    last_run = models.DateTimeField(null=True, blank=True)
    last_task = models.CharField(max_length=32, null=True, blank=True)
    # Why the last tick queued no run (its owner disabled, a file gone), else null.
    last_error = models.TextField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = (
            # The due ticks, earliest first, without reading paused schedules.
            models.Index(fields=["next_run"], condition=Q(paused=False), name="schedule_due"),
        )

    def __str__(self) -> str:
        return self.key


class ScheduleFile(models.Model):
    """A blob a schedule's runs use: garbage collection keeps it while the schedule exists, and
    its owner may read it as a task's input file."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="files")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


class WebhookSecret(models.Model):
    """The key that signs `user`'s webhooks (`deliver.sign`), made when first needed."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="webhook_secret")
    secret = models.CharField(max_length=64, default=new_webhook_secret)
    created = models.DateTimeField(auto_now=True)


class Channel(models.TextChoices):
    WEBHOOK = "webhook"
    EMAIL = "email"


class Delivery(models.Model):
    """One notification to send (`notify`, `deliver`): made in the transaction that made its task
    final (or its batch complete), so that none is lost to a server that dies; sent, retried and
    given up by whichever process claims it. `next_try` is null once it is delivered or given
    up; while an attempt runs it is the attempt's lease (another process may try after it)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(
        Task, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    target = models.TextField()  # a URL or an e-mail address
    format = models.CharField(max_length=8)  # json, slack, callback (a task's callback_url), email
    event = models.CharField(max_length=16)
    body = models.TextField()  # the exact bytes sent (UTF-8), which the signature covers
    created = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    next_try = models.DateTimeField(null=True, blank=True)
    tried = models.DateTimeField(null=True, blank=True)
    delivered = models.DateTimeField(null=True, blank=True)
    gave_up = models.BooleanField(default=False)
    last_status = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = (
            # Claims read the due deliveries only, earliest first, however long the log grows.
            models.Index(
                fields=["next_try"], condition=Q(next_try__isnull=False), name="delivery_due"
            ),
        )


class GridSecret(models.Model):
    """The secret key of every server on this database, where none is given them (secret.py):
    one row, put there by the first server that started."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    key = models.CharField(max_length=200)
