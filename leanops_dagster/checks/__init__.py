"""Asset checks that look at whole tables (per-run checks are emitted by the assets)."""
