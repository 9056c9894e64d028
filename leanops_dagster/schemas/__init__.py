"""Topic schemas: pydantic models (``models``), file loading (``loader``), the registry, and the
values each declared type accepts: the type grammar (``types``), the cast of Standardized text
to it (``cast``, also used to validate a schema's literals), storable text (``text``)."""
