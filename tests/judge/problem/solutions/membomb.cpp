// Grows its stack until it is stopped (kolejka-judge bounds the heap with RLIMIT_DATA, not the
// stack: only the memory limit of the solution's session stops this).
static int deeper(int depth) {
    volatile char frame[1 << 16];
    frame[depth % sizeof(frame)] = static_cast<char>(depth);
    return deeper(depth + 1) + frame[(depth * 7) % sizeof(frame)];
}

int main() {
    return deeper(0);
}
