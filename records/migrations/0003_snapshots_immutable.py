"""Snapshots and their source results are never changed: PostgreSQL refuses UPDATE and DELETE.
A refresh makes a new snapshot; a signed outcome pins the one the meeting saw."""

from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION records_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% rows are never changed: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER records_snapshot_immutable BEFORE UPDATE OR DELETE ON records_snapshot
    FOR EACH ROW EXECUTE FUNCTION records_refuse_change();
CREATE TRIGGER records_sourceresult_immutable BEFORE UPDATE OR DELETE ON records_sourceresult
    FOR EACH ROW EXECUTE FUNCTION records_refuse_change();
"""

ALLOW = """
DROP TRIGGER IF EXISTS records_snapshot_immutable ON records_snapshot;
DROP TRIGGER IF EXISTS records_sourceresult_immutable ON records_sourceresult;
DROP FUNCTION IF EXISTS records_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("records", "0002_snapshot_source_sourceresult_and_more")]
    operations = [migrations.RunSQL(FORBID, reverse_sql=ALLOW)]
