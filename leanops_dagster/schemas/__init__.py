"""Topic schemas: pydantic models (``models``), file loading (``loader``), the registry."""
