// Forks for ever (each child too), never answers.
#include <unistd.h>
int main() {
    for (;;)
        fork();
}
