"""The benchmark database: a dedicated PostgreSQL database (``mdt_bench`` on the server of
DATABASE_URL, or BENCH_DATABASE_URL), created if missing and migrated, with Django set up
against it in this process. The demo database of ``make run`` is never touched. A benchmark may
ask for a database of its own name on the same server (``setup("mdt_bench_live")``); Django in
this process then points at it until another benchmark asks for another."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB_NAME = "mdt_bench"
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/mdt"

_envs: dict[str, dict[str, str]] = {}


def database_url(name: str = BENCH_DB_NAME) -> str:
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit and name == BENCH_DB_NAME:
        return explicit
    parts = urlsplit(explicit or os.environ.get("DATABASE_URL") or DEFAULT_SERVER_URL)
    return urlunsplit(parts._replace(path=f"/{name}", query=""))


def connect(url: str, dbname: str | None = None, **kwargs):
    """A psycopg connection to the server of ``url`` (to ``dbname`` if given)."""
    import dj_database_url
    import psycopg

    conf = dj_database_url.parse(url)
    return psycopg.connect(
        dbname=dbname or conf["NAME"],
        user=conf.get("USER") or None,
        password=conf.get("PASSWORD") or None,
        host=conf.get("HOST") or None,
        port=conf.get("PORT") or None,
        connect_timeout=10,
        **kwargs,
    )


def ensure_database(url: str) -> None:
    """CREATE DATABASE (what createdb does) when the benchmark database is missing."""
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    with connect(url, dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            print(f"bench: creating database {name}", file=sys.stderr)
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def server_env(name: str = BENCH_DB_NAME) -> dict[str, str]:
    """The environment of the app against the benchmark database (for gunicorn and manage.py)."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(name),
        DJANGO_SETTINGS_MODULE="config.settings",
        ALLOW_SYNTHETIC_NHS_NUMBERS="1",
        QUERY_COUNT_HEADER="1",
    )
    return env


def setup(name: str = BENCH_DB_NAME) -> dict[str, str]:
    """Creates and migrates the benchmark database, sets Django up against it in this process
    (for making benchmark data with the ORM) and returns the environment for the server."""
    if name in _envs:
        _point_django_at(_envs[name])
        return dict(_envs[name])
    env = server_env(name)
    ensure_database(env["DATABASE_URL"])
    migrate = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if migrate.returncode != 0:
        sys.stderr.write(migrate.stdout + migrate.stderr)
        raise RuntimeError("manage.py migrate into the benchmark database failed")
    for key in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "ALLOW_SYNTHETIC_NHS_NUMBERS"):
        os.environ[key] = env[key]
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    _point_django_at(env)
    _envs[name] = env
    return dict(env)


def _point_django_at(env: dict[str, str]) -> None:
    """Django set up in this process for another benchmark's database: use this one instead."""
    import dj_database_url
    from django.conf import settings
    from django.db import connections

    wanted = dj_database_url.parse(env["DATABASE_URL"])["NAME"]
    if settings.DATABASES["default"]["NAME"] == wanted:
        return
    connections.close_all()
    settings.DATABASES["default"]["NAME"] = wanted
    connections["default"].settings_dict["NAME"] = wanted
