"""``login`` stores a token (mode 0600, never the password) that later commands use; ``logout``
revokes and forgets it. Carol is the user of these tests, since logging out revokes her token."""

import os
import stat

from .live import PASSWORD


def test_it_logs_in_stores_a_private_token_and_uses_it(cli, server, home):
    done = cli("login", "--username", "carol", "--password", PASSWORD, user=None)
    assert done.returncode == 0, done.stderr
    assert f"logged in to {server.url} as carol (client)" in done.stdout
    credentials = home / "kolejka" / "credentials"
    assert stat.S_IMODE(os.stat(credentials).st_mode) == 0o600
    text = credentials.read_text()
    assert PASSWORD not in text and "token = " in text
    # Later commands need neither a password nor the server: both come from the login.
    listing = cli("task", "list", user=None, KOLEJKA_SERVER="")
    assert listing.returncode == 0, listing.stderr
    out = cli("logout", user=None)
    assert out.returncode == 0 and f"logged out of {server.url}" in out.stdout
    assert "token" not in credentials.read_text()
    token = text.split("token = ")[1].split()[0]
    refused = cli("task", "list", user=None, KOLEJKA_TOKEN=token)
    assert refused.returncode == 2  # the token was revoked on the server


def test_it_asks_for_the_name_and_password_when_not_given(cli, home):
    done = cli("login", "--json", user=None, input=f"carol\n{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert '"username": "carol"' in done.stdout and PASSWORD not in done.stdout
    assert (home / "kolejka" / "credentials").exists()
    cli("logout", user=None)


def test_it_refuses_a_wrong_password_and_stores_nothing(cli, home):
    done = cli("login", "--username", "carol", "--password", "wrong", user=None)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "wrong user name or password" in done.stderr
    assert not (home / "kolejka" / "credentials").exists()


def test_it_takes_the_password_from_the_environment(cli):
    done = cli("task", "list", user=None, KOLEJKA_USERNAME="carol", KOLEJKA_PASSWORD=PASSWORD)
    assert done.returncode == 0, done.stderr


def test_it_says_there_is_nothing_to_log_out_of(cli, server):
    done = cli("logout", user=None)
    assert done.returncode == 0 and f"no login stored for {server.url}" in done.stdout
