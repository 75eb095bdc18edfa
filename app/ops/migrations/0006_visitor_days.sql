-- The breakdowns' working sets, one row per visitor and day instead of one per value
-- (rollups/breakdowns.py): `seen` holds the values the visitor was seen under that day, each
-- as its key (the dimension's length in characters, ':', the dimension, the value: one text
-- per pair, and no two pairs share one), and `lead` whether the visitor was a lead that day.
-- The drain wrote about 12 rows of a 5-column key per event; it writes one now.
ALTER TABLE breakdown_visitors RENAME TO breakdown_visitors_0004;
ALTER INDEX breakdown_visitors_pkey RENAME TO breakdown_visitors_0004_pkey;
CREATE TABLE breakdown_visitor_days (
    tenant_id bigint NOT NULL,
    day date NOT NULL,
    visitor bytea NOT NULL,
    seen text[] NOT NULL,
    lead boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, day, visitor)
);

-- Today's working sets carry over, or the day's distinct counts would go wrong.
INSERT INTO breakdown_visitor_days (tenant_id, day, visitor, seen, lead)
SELECT tenant_id, day, visitor, coalesce(m.seen, '{}'), l.visitor IS NOT NULL
FROM (SELECT tenant_id, day, visitor,
             array_agg(length(dimension) || ':' || dimension || value) AS seen
      FROM breakdown_visitors_0004 GROUP BY 1, 2, 3) AS m
FULL JOIN lead_visitors AS l USING (tenant_id, day, visitor);

DROP TABLE breakdown_visitors_0004;
DROP TABLE lead_visitors;
ALTER TABLE breakdown_visitor_days RENAME TO breakdown_visitors;
ALTER INDEX breakdown_visitor_days_pkey RENAME TO breakdown_visitors_pkey;
-- Who was a lead which day, as the table of that name said before.
CREATE VIEW lead_visitors AS
SELECT tenant_id, day, visitor FROM breakdown_visitors WHERE lead;
