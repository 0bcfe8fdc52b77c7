"""Allocate and touch memory one MiB at a time until something stops us."""

blocks = []
while True:
    blocks.append(bytearray(b"x" * (1 << 20)))
    if len(blocks) % 64 == 0:
        print(f"{len(blocks)} MiB", flush=True)
