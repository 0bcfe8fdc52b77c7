"""Settings of kolejka's programs, layered: flags over environment over files.

Files are INI, read from the system folder (``/etc/kolejka/``) and then the user's
(``$XDG_CONFIG_HOME/kolejka/``, by default ``~/.config/kolejka/``), the user's winning::

    [kolejka]               # shared by the client and the foreman
    server = https://kolejka.example.org
    username = alice
    token = ...             # only in a file nobody else may read

    [foreman]               # a program's own section; see Settings.get
    slots = 2

Each folder may hold ``kolejka.conf`` (written by people). The user's folder also holds
``credentials``, written by ``kolejka-client login`` (mode 0600): one section per server URL with
``username`` and ``token``, and a ``[login]`` section naming the last server logged in to. A file
that holds a password or a token must not be readable by group or others.

The environment gives ``KOLEJKA_SERVER``, ``KOLEJKA_USERNAME``, ``KOLEJKA_PASSWORD``,
``KOLEJKA_TOKEN``, and ``KOLEJKA_<SECTION>_<KEY>`` for a program's own keys. The foreman reads
the same server and credentials through `load_settings` and its own keys through `Settings.get`.
"""

from __future__ import annotations

import configparser
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

SHARED = "kolejka"
CONFIG_FILE = "kolejka.conf"
CREDENTIALS_FILE = "credentials"
LOGIN_SECTION = "login"
SYSTEM_DIR = Path("/etc/kolejka")
SECRETS = ("password", "token")
SHARED_KEYS = ("server", "username", "password", "token")

# The layers, lowest first; a setting from a later layer wins.
SYSTEM, USER, ENVIRONMENT, FLAG = "system file", "user file", "environment", "flag"
_RANK = {SYSTEM: 0, USER: 1, ENVIRONMENT: 2, FLAG: 3}


def user_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's configuration folder: ``$XDG_CONFIG_HOME/kolejka`` or ``~/.config/kolejka``."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kolejka"


def normalise_server(url: str) -> str:
    """`url` without trailing slashes; raise `ConfigError` unless it is an http(s) URL."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise ConfigError(f"server: must be an http:// or https:// URL (got {url!r})")
    return url


@dataclass(frozen=True)
class Setting:
    """A value and the layer it came from (`source` names the file or variable)."""

    value: str
    layer: str
    source: str

    @property
    def rank(self) -> int:
        return _RANK[self.layer]


@dataclass
class Settings:
    """The resolved settings: the shared ones (server and credentials) and every file section."""

    shared: dict[str, Setting] = field(default_factory=dict)
    sections: dict[str, dict[str, Setting]] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=dict)
    user_dir: Path = field(default_factory=user_dir)

    def value(self, key: str) -> str | None:
        """A shared setting (``server``, ``username``, ``password``, ``token``), or `None`."""
        setting = self.shared.get(key)
        return setting.value if setting else None

    @property
    def server(self) -> str | None:
        return self.value("server")

    def require_server(self) -> str:
        """The server URL; raise `ConfigError` saying where to set it when there is none."""
        if self.server is None:
            raise ConfigError(
                "no server configured: pass --server URL, set KOLEJKA_SERVER, put "
                f"'server = URL' under [{SHARED}] in {self.user_dir / CONFIG_FILE}, "
                "or run 'kolejka-client login --server URL'"
            )
        return self.server

    def credential(self) -> tuple[str, str] | None:
        """Which credential to use: ``("token", T)``, ``("password", P)`` or `None`.

        The one set in the higher layer wins (a ``KOLEJKA_PASSWORD`` beats a stored token); in
        the same layer the token wins.
        """
        token, password = self.shared.get("token"), self.shared.get("password")
        if token and (not password or token.rank >= password.rank):
            return ("token", token.value)
        if password:
            return ("password", password.value)
        return None

    def get(self, section: str, key: str, default: str | None = None) -> str | None:
        """A program's own setting: ``KOLEJKA_<SECTION>_<KEY>``, else the files, else `default`."""
        variable = f"KOLEJKA_{section}_{key}".upper().replace("-", "_")
        if variable in self.environ:
            return self.environ[variable]
        setting = self.sections.get(section, {}).get(key)
        return setting.value if setting else default


def _read_ini(path: Path, layer: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        return parser
    except (OSError, UnicodeDecodeError, configparser.Error) as error:
        raise ConfigError(f"{path}: cannot read this {layer}: {error}") from None
    has_secret = any(parser.has_option(s, key) for s in parser.sections() for key in SECRETS)
    if has_secret and os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path}: holds a password or token but others may read it; run 'chmod 600 {path}'"
        )
    return parser


def _layer(folder: Path, layer: str, settings: Settings) -> None:
    """Apply one folder's files on top of `settings`."""
    config = _read_ini(folder / CONFIG_FILE, layer)
    source = str(folder / CONFIG_FILE)
    for section in config.sections():
        for key, value in config.items(section):
            setting = Setting(value, layer, f"{source} [{section}] {key}")
            if section == SHARED and key in SHARED_KEYS:
                settings.shared[key] = setting
            else:
                settings.sections.setdefault(section, {})[key] = setting


def load_settings(
    *,
    server: str | None = None,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
    user_folder: Path | None = None,
    system_folder: Path = SYSTEM_DIR,
) -> Settings:
    """Resolve the settings: the arguments (flags) over `environ` over the user's files over the
    system's. The server last logged in to ranks just below the user's ``kolejka.conf``, and the
    token stored for the resolved server counts as a user file. Raise `ConfigError` for an
    unreadable file, a secret in a file others may read, or a server that is not an http(s) URL.
    """
    environ = dict(os.environ if environ is None else environ)
    folder = user_folder if user_folder is not None else user_dir(environ)
    settings = Settings(environ=environ, user_dir=folder)
    _layer(system_folder, SYSTEM, settings)
    _layer(folder, USER, settings)
    path = folder / CREDENTIALS_FILE
    login = _read_ini(path, USER)
    current = settings.shared.get("server")
    if login.has_option(LOGIN_SECTION, "server") and (current is None or current.layer == SYSTEM):
        last = login.get(LOGIN_SECTION, "server")
        settings.shared["server"] = Setting(last, USER, f"{path} [{LOGIN_SECTION}]")
    for key in SHARED_KEYS:
        variable = f"KOLEJKA_{key.upper()}"
        if environ.get(variable):
            settings.shared[key] = Setting(environ[variable], ENVIRONMENT, variable)
    flags = {"server": server, "username": username, "password": password, "token": token}
    for key, value in flags.items():
        if value is not None:
            settings.shared[key] = Setting(value, FLAG, f"--{key}")
    current = settings.shared.get("server")
    if current is None:
        return settings
    url = normalise_server(current.value)
    settings.shared["server"] = Setting(url, current.layer, current.source)
    if login.has_section(url):
        for key in ("username", "token"):
            held = settings.shared.get(key)
            if login.has_option(url, key) and (held is None or held.rank <= _RANK[USER]):
                settings.shared[key] = Setting(login.get(url, key), USER, f"{path} [{url}]")
    return settings


def store_login(folder: Path, server: str, username: str, token: str) -> Path:
    """Remember `token` for `server` in ``credentials`` (mode 0600) and make `server` the default.

    The password is never written. Returns the file's path.
    """
    path = folder / CREDENTIALS_FILE
    credentials = _read_ini(path, USER)
    if not credentials.has_section(server):
        credentials.add_section(server)
    credentials.set(server, "username", username)
    credentials.set(server, "token", token)
    if not credentials.has_section(LOGIN_SECTION):
        credentials.add_section(LOGIN_SECTION)
    credentials.set(LOGIN_SECTION, "server", server)
    _write_private(path, credentials)
    return path


def forget_login(folder: Path, server: str) -> bool:
    """Remove the token stored for `server`; return whether there was one."""
    path = folder / CREDENTIALS_FILE
    credentials = _read_ini(path, USER)
    if not credentials.remove_section(server):
        return False
    _write_private(path, credentials)
    return True


def _write_private(path: Path, parser: configparser.ConfigParser) -> None:
    """Write `parser` to `path` atomically, readable by its owner only from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        parser.write(handle)
    os.replace(temporary, path)
