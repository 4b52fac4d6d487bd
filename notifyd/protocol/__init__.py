"""Wire formats: what BIMserver sends and expects, as pydantic models. No I/O here."""
