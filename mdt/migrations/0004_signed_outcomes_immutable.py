"""A signed outcome is the legal record: PostgreSQL refuses to change or delete it. Amendments are
new rows (``amendment_no`` + 1) with a reason."""

from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION mdt_refuse_signed_outcome_change() RETURNS trigger AS $$
BEGIN
    IF OLD.signed_at IS NOT NULL THEN
        RAISE EXCEPTION 'signed outcome % is never changed: % is not allowed; amend it instead',
            OLD.id, TG_OP USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER mdt_outcome_signed_immutable BEFORE UPDATE OR DELETE ON mdt_outcome
    FOR EACH ROW EXECUTE FUNCTION mdt_refuse_signed_outcome_change();
"""

ALLOW = """
DROP TRIGGER IF EXISTS mdt_outcome_signed_immutable ON mdt_outcome;
DROP FUNCTION IF EXISTS mdt_refuse_signed_outcome_change();
"""


class Migration(migrations.Migration):
    dependencies = [("mdt", "0003_live_meeting_and_outcomes")]
    operations = [migrations.RunSQL(FORBID, reverse_sql=ALLOW)]
