"""A local SQLite MLflow store written directly, without importing MLflow: what makes a tracked run fast.

Importing MLflow and opening its SQLAlchemy store takes about 2 s on this machine, and logging the model
another 0.6 s (its input example is validated by loading the model back): several times the whole of a small
run. For the default store, a SQLite file, `LocalStore` writes the same rows into MLflow's own tables and the
same files into the run's artifact folder as MLflow's client does, with `sqlite3` and the standard library.

It is used only when it is known to be right: the database must exist, its schema must be at an alembic
revision that this module was checked against (`schema.KNOWN_REVISIONS`), and the experiment's artifact
location must be a local folder. Anything else (a new store, another MLflow schema, a server, an artifact
store elsewhere) goes through MLflow's client as before. `tests/tracking/test_local_store.py` performs the
same operations through MLflow and through this store on twin databases and compares every row and file.
"""

from plugins.tracking.local.store import LocalStore, open_local

__all__ = ["LocalStore", "open_local"]
