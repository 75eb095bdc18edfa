-- Leads per tenant-day: unique visitors who sent an event of a `lead` type
-- (realtime/event_types.py), counted and kept as a sketch like the visitors, so the leads of
-- a period are a true union of its days.
ALTER TABLE daily_rollups ADD COLUMN leads bigint NOT NULL DEFAULT 0;
ALTER TABLE daily_rollups ADD COLUMN leads_hll bytea;

-- The two-letter country of the client address (looked up at /track; the address is never
-- stored), ZZ when unknown.
ALTER TABLE events ADD COLUMN country char(2) NOT NULL DEFAULT 'ZZ';

-- Breakdowns: per tenant, local day, dimension (rollups/dimensions.py) and value, the events
-- read for the dimension, the distinct visitors who sent them and how many of those were
-- leads that day. At most a set number of values per tenant, day and dimension; the rest
-- are counted under '(other)'.
CREATE TABLE breakdown_rollups (
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day date NOT NULL,
    dimension text NOT NULL,
    value text NOT NULL,
    events bigint NOT NULL DEFAULT 0,
    visitors bigint NOT NULL DEFAULT 0,
    leads bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, dimension, day, value)
);

-- The working sets of the current days, from which the drain counts distinct visitors and
-- leads per value: which visitor (a hash of the day's salted address hash and user agent)
-- was seen under which value, and which visitors were leads. Retention deletes them once
-- their day is over, so no identifier outlives its day by more than that.
CREATE TABLE breakdown_visitors (
    tenant_id bigint NOT NULL,
    day date NOT NULL,
    dimension text NOT NULL,
    value text NOT NULL,
    visitor bytea NOT NULL,
    PRIMARY KEY (tenant_id, day, visitor, dimension, value)
);
CREATE TABLE lead_visitors (
    tenant_id bigint NOT NULL,
    day date NOT NULL,
    visitor bytea NOT NULL,
    PRIMARY KEY (tenant_id, day, visitor)
);
