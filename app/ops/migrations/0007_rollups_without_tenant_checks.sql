-- The rollups the scheduler writes on every pass keep no foreign key to tenants, as `events`
-- and `breakdown_visitors` never had one: its check read and share-locked the tenant's row
-- for each row written (several breakdown rows an event): about 30% of the drain's Postgres
-- time (bench/drain.py). The drain and the flush count only tenants that exist
-- (rollups/breakdowns.py, rollups/flush.py), and tenant ids are never reused; a tenant
-- deleted by hand still takes these rows along, by the trigger below instead of a cascade.
ALTER TABLE daily_rollups DROP CONSTRAINT daily_rollups_tenant_id_fkey;
ALTER TABLE breakdown_rollups DROP CONSTRAINT breakdown_rollups_tenant_id_fkey;

CREATE FUNCTION delete_tenant_rollups() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM daily_rollups WHERE tenant_id = OLD.id;
    DELETE FROM breakdown_rollups WHERE tenant_id = OLD.id;
    RETURN OLD;
END
$$;
CREATE TRIGGER tenants_delete_rollups AFTER DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION delete_tenant_rollups();
