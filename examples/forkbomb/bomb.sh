#!/bin/sh
# Every copy starts two more, for ever. The pids limit stops the growth; the time limit ends it.
bomb() { bomb | bomb & }
bomb
# Stay alive without starting processes (there are none to spare): when this shell, the
# container's first process, exits, the kernel kills all the copies at once.
while :; do wait; done
