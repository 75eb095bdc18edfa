"""POST /track: the contract line by line, the body validator's properties, and Redis outages
on the ingestion path."""
