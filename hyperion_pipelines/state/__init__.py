"""The state database: per-document state that outlives a run (quarantine ledger, index manifest)."""
