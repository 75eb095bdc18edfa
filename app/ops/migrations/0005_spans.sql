-- Spans: runs of a tenant's days taken together, so a long period reads a handful of rows
-- instead of one per day (rollups/spans.py): blocks of 2, 4, ... 256 days, whole months, and
-- the parts that are over of the named periods of the day. A row here says the span is
-- built, with the union of its days' visitor and lead sketches; breakdown_spans holds the
-- sums of its days' breakdown rows. Built for days that are over; any later write to one of
-- its days deletes the span, in the same transaction, and it is built again.
CREATE TABLE rollup_spans (
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    first_day date NOT NULL,
    last_day date NOT NULL,
    visitors_hll bytea,
    leads_hll bytea,
    PRIMARY KEY (tenant_id, first_day, last_day)
);
-- A write finds the spans holding its day from their last day: none, for today's.
CREATE INDEX rollup_spans_last_day ON rollup_spans (tenant_id, last_day);
CREATE TABLE breakdown_spans (
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    first_day date NOT NULL,
    last_day date NOT NULL,
    dimension text NOT NULL,
    value text NOT NULL,
    events bigint NOT NULL,
    visitors bigint NOT NULL,
    leads bigint NOT NULL,
    PRIMARY KEY (tenant_id, first_day, last_day, dimension, value)
);
