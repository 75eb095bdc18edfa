-- Leads per tenant-day: unique visitors who sent an event of a `lead` type
-- (realtime/event_types.py), counted and kept as a sketch like the visitors, so the leads of
-- a period are a true union of its days.
ALTER TABLE daily_rollups ADD COLUMN leads bigint NOT NULL DEFAULT 0;
ALTER TABLE daily_rollups ADD COLUMN leads_hll bytea;
