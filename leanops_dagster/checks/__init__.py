"""Asset checks that look at whole tables (per-run checks are emitted by the assets; their
wording is ``pipeline.check_messages``, the drift log reader ``pipeline.known_drift``)."""
