"""Asset families, one module each: wiring and metadata around the library stage functions."""
