# Shared set-up steps for scripts/test and scripts/demo. Each step is idempotent: it checks
# first and does only what is missing, so a second run costs seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KOLEJKA_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
    # Install Debian packages by name; only root on a Debian-like system can.
    is_root && command -v apt-get >/dev/null ||
        die "missing $*: install the Debian packages '$*' (or run this script as root to let it)"
    say "installing $* from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 || {
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
    }
}

ensure_venv() {
    command -v python3 >/dev/null || die "python3 (3.11 or newer) is needed"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "python3 is $(python3 -V 2>&1); kolejka needs Python 3.11 or newer"
    [ -x "$PY" ] || { say "creating virtualenv $VENV"; python3 -m venv "$VENV"; }
    local stamp="$VENV/.kolejka-installed" want
    want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing kolejka and its dependencies into $VENV"
        "$PY" -m pip install -q --disable-pip-version-check -e "$ROOT[dev]"
        echo "$want" > "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}

ensure_docker() {
    if docker info >/dev/null 2>&1; then return; fi
    command -v dockerd >/dev/null || apt_install docker.io
    is_root || die "no docker engine answers and only root can start one: start dockerd, or run as root"
    say "starting dockerd in the background (log: /var/log/kolejka-dockerd.log)"
    nohup dockerd >/var/log/kolejka-dockerd.log 2>&1 &
    for _ in $(seq 1 120); do
        docker info >/dev/null 2>&1 && return
        sleep 0.5
    done
    die "dockerd did not come up in 60 s; see /var/log/kolejka-dockerd.log"
}

ensure_images() {
    # busybox must be the static build: it is copied into an image that has no libc.
    [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || apt_install busybox-static
    command -v debootstrap >/dev/null || apt_install debootstrap
    command -v gcc >/dev/null && [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || apt_install gcc libc6-dev
    "$ROOT/images/build"
}

ensure_foreman_os_tools() {
    # The foreman OS image test builds the node image (debootstrap, mkfs.ext4) and boots it.
    command -v debootstrap >/dev/null || apt_install debootstrap
    command -v mkfs.ext4 >/dev/null || apt_install e2fsprogs
    command -v qemu-system-x86_64 >/dev/null || apt_install qemu-system-x86
}

ensure_chromium() {
    # The board's browser tests drive Debian's own Chromium (Playwright never downloads one).
    [ -x /usr/bin/chromium ] || apt_install chromium
}

ensure_postgres() {
    # Tests that prove the queue under concurrency need a real PostgreSQL.
    local url="${KOLEJKA_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
    if "$PY" -c "import psycopg, sys; psycopg.connect(sys.argv[1], connect_timeout=3).close()" "$url" 2>/dev/null; then
        export KOLEJKA_TEST_POSTGRES="$url"
        return
    fi
    if command -v pg_ctlcluster >/dev/null && is_root; then
        say "starting the local PostgreSQL cluster"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | tail -1)" main start || true
        if "$PY" -c "import psycopg, sys; psycopg.connect(sys.argv[1], connect_timeout=5).close()" "$url"; then
            export KOLEJKA_TEST_POSTGRES="$url"
            return
        fi
    fi
    die "PostgreSQL is not reachable at $url; the queue tests need one. Install and start PostgreSQL (apt-get install postgresql) with a user that may create databases, or set KOLEJKA_TEST_POSTGRES to its URL"
}

ensure_haproxy() {
    # The scale-out test puts several server processes behind Debian's haproxy.
    command -v haproxy >/dev/null || apt_install haproxy
}
