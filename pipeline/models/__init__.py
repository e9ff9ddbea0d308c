"""Layer 2, models: networks, loss plug-ins and the self-describing model-file format."""
