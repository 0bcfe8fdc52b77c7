"""Configuration layering: flags over environment over the user's files over the system's."""

import os
import stat

import pytest

from kolejka.client import ConfigError, KolejkaClient, load_settings
from kolejka.client.config import forget_login, store_login


@pytest.fixture
def folders(tmp_path):
    system, user = tmp_path / "etc", tmp_path / "user"
    system.mkdir()
    user.mkdir()
    return system, user


def write(path, text, mode=0o644):
    path.write_text(text)
    path.chmod(mode)


def settings(folders, environ=None, **flags):
    system, user = folders
    return load_settings(environ=environ or {}, user_folder=user, system_folder=system, **flags)


def test_it_takes_flags_over_environment_over_user_file_over_system_file(folders):
    system, user = folders
    write(system / "kolejka.conf", "[kolejka]\nserver = http://system\nusername = sys\n")
    assert settings(folders).server == "http://system"
    write(user / "kolejka.conf", "[kolejka]\nserver = http://user/\n")
    assert settings(folders).server == "http://user"
    assert settings(folders).value("username") == "sys"
    environ = {"KOLEJKA_SERVER": "http://env", "KOLEJKA_USERNAME": "envuser"}
    assert settings(folders, environ).server == "http://env"
    assert settings(folders, environ).value("username") == "envuser"
    assert settings(folders, environ, server="http://flag").server == "http://flag"
    assert settings(folders, environ, server="http://flag").shared["server"].source == "--server"


def test_it_reads_a_programs_own_section_for_the_foreman(folders):
    system, user = folders
    write(system / "kolejka.conf", "[foreman]\nslots = 2\nname = node01\n")
    write(user / "kolejka.conf", "[foreman]\nslots = 4\n")
    resolved = settings(folders)
    assert resolved.get("foreman", "slots") == "4"
    assert resolved.get("foreman", "name") == "node01"
    assert resolved.get("foreman", "missing", "default") == "default"
    resolved = settings(folders, {"KOLEJKA_FOREMAN_SLOTS": "8"})
    assert resolved.get("foreman", "slots") == "8"


def test_it_refuses_a_secret_in_a_file_others_may_read(folders):
    system, _ = folders
    write(system / "kolejka.conf", "[kolejka]\ntoken = abc\n", mode=0o644)
    with pytest.raises(ConfigError, match="others may read it; run 'chmod 600"):
        settings(folders)
    (system / "kolejka.conf").chmod(0o600)
    assert settings(folders).credential() == ("token", "abc")


def test_it_stores_a_login_as_a_private_token_for_that_server(folders):
    _, user = folders
    path = store_login(user, "http://kolejka", "alice", "tok")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "tok" in path.read_text()
    resolved = settings(folders)
    assert resolved.server == "http://kolejka"  # the last server logged in to
    assert resolved.credential() == ("token", "tok")
    assert resolved.value("username") == "alice"
    other = settings(folders, server="http://elsewhere")
    assert other.credential() is None  # a token is only sent to the server it came from
    assert forget_login(user, "http://kolejka")
    assert settings(folders).credential() is None
    assert not forget_login(user, "http://kolejka")


def test_it_prefers_the_credential_given_in_the_higher_layer(folders):
    _, user = folders
    store_login(user, "http://kolejka", "alice", "stored")
    assert settings(folders).credential() == ("token", "stored")
    environ = {"KOLEJKA_USERNAME": "bob", "KOLEJKA_PASSWORD": "pw"}
    assert settings(folders, environ).credential() == ("password", "pw")
    assert settings(folders, environ, token="flag").credential() == ("token", "flag")
    environ = {"KOLEJKA_TOKEN": "env", "KOLEJKA_PASSWORD": "pw"}
    assert settings(folders, environ).credential() == ("token", "env")


def test_it_says_how_to_set_a_missing_server(folders):
    with pytest.raises(ConfigError, match="no server configured: pass --server URL, set KOLEJKA"):
        KolejkaClient.from_settings(settings(folders))


def test_it_refuses_a_server_that_is_not_a_url(folders):
    with pytest.raises(ConfigError, match="server: must be an http:// or https:// URL"):
        settings(folders, {"KOLEJKA_SERVER": "kolejka.example.org"})


def test_it_names_the_file_that_cannot_be_parsed(folders):
    _, user = folders
    write(user / "kolejka.conf", "server = x\n")
    with pytest.raises(ConfigError, match=r"kolejka.conf: cannot read this user file"):
        settings(folders)
