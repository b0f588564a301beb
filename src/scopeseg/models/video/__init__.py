"""Video family: SAM2 through transformers (``sam2``) and a SAM2-style memory head on LiteMedSAM / MobileSAM."""
