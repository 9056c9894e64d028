"""Deploying a topic schema: compatible changes evolve Curated, breaking ones need a rebuild.

The package, one job per module:

- ``deploy``: ``deploy_schema`` (classify, evolve or refuse or rebuild, publish);
- ``run``: ``rebuild_topic``, the steps below in order;
- ``staging``: the staging tables' names and the chunked staging loop (steps 1, 2);
- ``replay``: the replay of an upstream's current data files (step 1);
- ``swap``: the table swaps and the error-row swaps (steps 3, 4);
- ``cleanup``: the dated copies and their clean-up, and the staging tables' (step 5).

``deploy_schema`` classifies the change (``schemas.compatibility``); a compatible change evolves
``curated.<topic>`` in one schema commit (``pipeline.curated_evolution``) and then publishes the
document; a breaking change is refused (``BreakingChangeError``) unless ``rebuild=True``,
which rebuilds the topic from its history under the new schema and then publishes. A rebuild
with no schema change restates the tables under the current code (the way to recover from a
bug fixed in a rule).

**Rebuild** (``rebuild_topic``), each step resumable: killed anywhere, the same call continues
where the committed state says it stopped and ends with the same tables.

1. *Stage*: the ordinary layer runs (``standardize_topic``, ``curate_topic``) write into
   staging tables (``StagingTables``: ``<zone>.<topic>__rebuild_<version>_<started>`` and their
   own error and drift tables) from the whole upstream history, in chunks of
   ``snapshots_per_chunk`` upstream snapshots (each run reads its upstream as of the chunk's
   last snapshot: ``upstream_at``). The history read is a *replay* (``replay``):
   a table holding the live upstream's current data files, appended again one snapshot per
   original append, sharing the files; the upstream's own snapshots would not do, since table
   maintenance expires them after its retention while the rows stay in the current files.
   Each chunk is a normal layer commit carrying its watermark, so a rerun continues after the
   last committed chunk (progress is reported per chunk). Curated is staged from the live
   Standardized history; after a breaking change of the Standardized schema (or
   ``from_raw``) Standardized is first staged from the whole RAW history and Curated from that
   staged Standardized. The staged tables are exactly what a
   fresh pipeline under the new schema builds: the same code over the same rows.
2. *Check*: each staged table's accountability equation over the whole history
   (``accountability``) must balance, else nothing is swapped.
3. *Swap*, atomically, per table (Standardized first when rebuilt, then Curated): ONE commit on
   the live table holds the schema change (columns added, dropped, retyped under a new field
   id, reordered to the staged schema), an ``overwrite`` snapshot that removes every live data
   file and adds the staged rows (written for the live table's field ids, with a full key
   index), and the staged watermark and running totals in its summary. A reader loads the
   table's metadata pointer from the catalog, which one commit moves from the old metadata to
   the new (SQL: one conditional UPDATE; Glue and REST: one conditional commit), so it reads
   the old table or the new one, never a mix or nothing. Not ``catalog.rename_table``: old ->
   dated, new -> live are two catalog operations (a reader between them finds no table, a
   crash between them leaves none) and Glue has no rename. The commit also lists the replaced
   schema version in the table property ``leanops.schema.superseded-versions``, so a layer run
   still on it (in flight, or started before the new version is published) is refused instead
   of writing old semantics. Watermarks and error rows of the staged tables name replay or
   staging snapshots, which do not survive the rebuild: the swaps rewrite them to the live
   upstream snapshot they stand for (the one the replay copied, or the Standardized swap).
4. *Swap error rows*: one commit per shared error table (``parse_errors``, ``curated.errors``)
   deletes the topic's rows and appends the staged ones with the staged errors watermark.
   Another table, so another commit: a Curated run between the two commits is harmless (it
   reads from the older of its two watermarks, and the swap replaces all of the topic's rows),
   and once a table is swapped no run of the replaced version writes to it.
5. The tables as they were stay readable under dated names,
   ``<zone>.<topic>__replaced_<version>_<started>``, registered on a copy of the pre-swap
   metadata with a location of its own (no data copied; maintenance of the copy cannot touch
   the live table's files); the table maintenance job drops such copies after its snapshot retention
   (``drop_replaced_copies``). The pre-swap snapshot also stays in the live table's history
   until maintenance expires it.

Then ``deploy_schema`` publishes the schema and drops the staging tables; the next runs
continue incrementally from the rebuilt tables' watermarks. ``deploy_schema`` holds the topic's
Curated lease (and Standardized lease, from RAW) for the whole rebuild, so the topic's regular
runs are no-ops meanwhile (``pipeline.exclusive.hold``) and their input waits upstream; the staging
runs take no lease. The superseded versions guard the runs that outlive a lease (an expired
one taken over).

Memory: a swap reads the staged table into memory once to write it for the live table, so a
rebuild needs memory for the topic's largest rebuilt table.
"""

from leanops_dagster.pipeline.rebuild.cleanup import drop_replaced_copies, drop_staging
from leanops_dagster.pipeline.rebuild.deploy import DeployOutcome, deploy_schema
from leanops_dagster.pipeline.rebuild.run import RebuildResult, rebuild_topic
from leanops_dagster.pipeline.rebuild.staging import RebuildError, StagingTables, staging_for

__all__ = [
    "DeployOutcome",
    "RebuildError",
    "RebuildResult",
    "StagingTables",
    "deploy_schema",
    "drop_replaced_copies",
    "drop_staging",
    "rebuild_topic",
    "staging_for",
]
