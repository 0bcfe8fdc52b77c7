"""Users and roles from the command line; tokens for the API."""

from __future__ import annotations

from .harness import Server


def login(server: Server, name: str, password: str):
    return server.api(None).post("auth/token/", json={"username": name, "password": password})


def test_it_adds_a_user_with_a_role_who_can_log_in(server: Server):
    server.manage("adduser", "carol", "--password", "s3cret", "--role", "foreman")
    answer = login(server, "carol", "s3cret")
    assert answer.status_code == 200
    assert answer.json()["username"] == "carol" and answer.json()["role"] == "foreman"
    token = answer.json()["token"]
    me = server.api(None).get("auth/me/", headers={"Authorization": f"Token {token}"})
    assert me.json() == {"username": "carol", "role": "foreman"}


def test_it_refuses_to_add_a_user_twice_or_with_a_bad_role(server: Server):
    twice = server.manage("adduser", "alice", "--password", "x", "--role", "client", check=False)
    assert twice.returncode != 0 and "setuser" in twice.stderr
    bad = server.manage("adduser", "dave", "--password", "x", "--role", "boss", check=False)
    assert bad.returncode != 0 and "--role" in bad.stderr
    assert login(server, "dave", "x").status_code == 401


def test_it_changes_a_users_role_password_and_access(server: Server):
    server.manage("setuser", "bob", "--role", "inspector", "--password", "new")
    assert login(server, "bob", "new").json()["role"] == "inspector"
    server.manage("setuser", "bob", "--disable")
    assert login(server, "bob", "new").status_code == 401


def test_it_reads_a_password_from_standard_input(server: Server):
    import subprocess

    from .harness import BIN

    done = subprocess.run(
        [str(BIN / "kolejka-server"), "adduser", "erin", "--password", "-", "--role", "client"],
        input="from-stdin\n", env=server.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "added client erin" in done.stderr
    assert login(server, "erin", "from-stdin").status_code == 200


def test_it_prints_and_renews_a_users_token(server: Server):
    old = server.manage("token", "fred").stdout.strip()
    assert old == server.tokens["fred"]
    new = server.manage("token", "fred", "--renew").stdout.strip()
    assert new != old
    assert server.api("fred").get("auth/me/").status_code == 401


def test_it_revokes_the_token_used_to_log_out(server: Server):
    alice = server.api("alice")
    assert alice.delete("auth/token/").status_code == 204
    assert alice.get("auth/me/").status_code == 401
