-- The tables the scheduler updates on every pass keep 30% of each page free, so a row's
-- new version can go on the row's own page (a heap-only update): no new entry in the
-- primary key's index, and the page's dead versions are pruned when it is next read, with
-- or without autovacuum. At the default (100) pages are filled, and most updates moved the
-- row to another page and indexed it again. Four drains of 30,000 events over 10,000
-- tenants (bench/drain.py's mix): 76% of breakdown_rollups' updates heap-only against 16%,
-- and the table 18% smaller (30.6 against 37.4 MB); Postgres's CPU an event the same
-- within the rounds' spread. With drains of 3,000 events, which update more and insert
-- less, Postgres spent about 12% less CPU an event. Pages written before this keep what
-- they hold; new ones get the room.
ALTER TABLE breakdown_rollups SET (fillfactor = 70);
ALTER TABLE daily_rollups SET (fillfactor = 70);
ALTER TABLE breakdown_visitors SET (fillfactor = 70);
