"""scopeseg.models.sam."""
