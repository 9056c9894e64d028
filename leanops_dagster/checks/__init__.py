"""Asset checks that look at whole tables (per-run checks are emitted by the assets), the
wording of every per-run verdict (``messages``) and the drift log reader (``drift``)."""
