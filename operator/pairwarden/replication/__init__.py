"""Replication of the replicated directories and the database from the active member to the
inactive one (docs/replication.md): a file API served by each member's agent, the
`pairwarden replicate` command that drives two of them, and settings-drift helpers."""
