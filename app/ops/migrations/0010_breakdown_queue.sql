-- Raw events the drain stored, waiting to be counted into the breakdowns
-- (rollups/breakdown_queue.py): the drain queues what it stores in the same statement, and
-- the scheduler counts the queue every so often, so that a tenant's events of several
-- passes are counted together. Rows live seconds; no index, as the counter takes the
-- queue oldest first, all of it.
CREATE TABLE breakdown_queue (LIKE events INCLUDING DEFAULTS);
