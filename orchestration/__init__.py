"""The Dagster code location of embodied-r: thin assets that call the library."""
