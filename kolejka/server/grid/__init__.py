"""The grid: users, blobs, tasks, the queue, leases, nodes and results."""
