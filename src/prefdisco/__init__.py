"""prefdisco: LLM-driven discovery of offline preference-optimization objectives, as a Snakemake DAG."""

__version__ = "0.1.0"
