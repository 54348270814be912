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


def test_upgrades_keep_existing_rows(dbs):
    """SQLite rebuilds tables in batch mode; rows in child tables must survive (no cascade deletes)."""
    url = dbs.empty()
    migrate.upgrade(url, "0001")
    engine = make_engine(url)
    try:
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO users (username, full_name, password_hash, role, is_active, "
                              "token_version, created_at) VALUES ('a', 'A', 'x', 'admin', true, 0, '2026-01-01')"))
            c.execute(sa.text("INSERT INTO alerts (identifier, sender, status, msg_type, scope, state, channels, "
                              "author_id, created_at, updated_at) VALUES ('i1', 's', 'Exercise', 'Alert', 'Public', "
                              "'sent', '[]', 1, '2026-01-01', '2026-01-01')"))
            c.execute(sa.text("INSERT INTO alert_infos (alert_id, position, language, category, event, urgency, "
                              "severity, certainty, headline, description, instruction, parameters) VALUES "
                              "(1, 0, 'id-ID', 'Met', 'Banjir', 'Immediate', 'Severe', 'Likely', 'h', '', '', '{}')"))
            c.execute(sa.text("INSERT INTO alert_areas (alert_id, area_desc, geocodes, polygons, circles) "
                              "VALUES (1, 'Palu', '[\"72.71\"]', '[]', '[]')"))
        engine.dispose()
        migrate.upgrade(url)
        with engine.connect() as c:
            assert c.scalar(sa.text("SELECT state FROM alerts")) == "published"
            assert c.scalar(sa.text("SELECT count(*) FROM alert_infos")) == 1
            assert c.scalar(sa.text("SELECT count(*) FROM alert_areas")) == 1
        engine.dispose()
        migrate.downgrade(url, "0001")
        with engine.connect() as c:
            assert c.scalar(sa.text("SELECT state FROM alerts")) == "sent"
            assert c.scalar(sa.text("SELECT count(*) FROM alert_infos")) == 1
    finally:
        engine.dispose()
