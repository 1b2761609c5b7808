"""Lethe: enforce a privacy policy's retention rules every night, with a provable audit trail.

The engine in this package is plain Python; only :mod:`lethe.airflow_adapter` imports Airflow.
"""

__version__ = "0.1.0"
