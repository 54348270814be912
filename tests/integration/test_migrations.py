import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from broadcast import migrate
from broadcast.db import make_engine
from broadcast.models import Base

pytestmark = pytest.mark.integration
TABLES = {"users", "alerts", "alert_infos", "alert_areas", "subscribers", "deliveries", "outbox_messages",
          "reports", "audit_log"}


def test_upgrade_downgrade_roundtrip(dbs):
    url = dbs.empty()
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        assert TABLES <= set(sa.inspect(engine).get_table_names())
        migrate.downgrade(url, "base")
        engine.dispose()
        assert set(sa.inspect(engine).get_table_names()) - {"alembic_version"} == set()
        migrate.upgrade(url)
        engine.dispose()
        assert TABLES <= set(sa.inspect(engine).get_table_names())
        assert not migrate.pending_revisions(engine)
    finally:
        engine.dispose()


def test_models_match_migrations(engine):
    """A model change without a migration fails here."""
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
