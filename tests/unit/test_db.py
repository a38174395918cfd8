"""The app's database: migrations make exactly the tables the code describes, idempotently, in WAL mode."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from nbhosting_core.db import metadata, open_database
from nbhosting_core.db.engine import MIGRATIONS, sqlite_url


def test_the_migrations_make_the_schema_the_code_describes(tmp_path):
    engine = open_database(sqlite_url(tmp_path / "db.sqlite"))
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []  # a table changed in schema.py without its migration fails here
    assert set(inspect(engine).get_table_names()) >= set(metadata.tables)


def test_opening_again_migrates_nothing_and_keeps_the_data(tmp_path):
    url = sqlite_url(tmp_path / "db.sqlite")
    with open_database(url).begin() as connection:
        connection.execute(text("INSERT INTO journal_cursor (source, \"offset\") VALUES ('2026-11-26.jsonl', 42)"))
    with open_database(url).connect() as connection:
        assert connection.execute(text('SELECT "offset" FROM journal_cursor')).scalar_one() == 42
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0001"


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    with open_database(sqlite_url(tmp_path / "db.sqlite")).connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1


def test_the_migrations_form_one_line(tmp_path):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1 and len(script.get_bases()) == 1


def test_processes_opening_a_new_database_at_once_migrate_it_once(tmp_path):
    # the app's workers and a root shell may open a new database together: one migrates, the others find it done
    import subprocess
    import sys

    url = sqlite_url(tmp_path / "db.sqlite")
    code = f"from nbhosting_core.db import open_database; open_database({url!r})"
    runs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(4)]
    errors = [run.communicate(timeout=60)[1].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0, 0], errors
    with open_database(url).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
