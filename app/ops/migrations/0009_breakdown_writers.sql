-- Who counted into each shard's breakdowns last (rollups/breakdowns.py): every count marks
-- the shards of its tenants with a fresh id, so a drain that finds its own mark at its next
-- batch knows no one else added values there since, and may trust the bounds on the groups'
-- sizes it kept instead of counting them again.
CREATE TABLE breakdown_writers (
    shard integer PRIMARY KEY,
    writer uuid NOT NULL
);
