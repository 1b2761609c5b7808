"""The demo estate: the reference estate's schema and deterministic fake data (Faker).

Only the demo and the tests know these table names; the engine reads names from the inventory.
"""
