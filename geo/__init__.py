"""Boundaries, gazetteer, targeting and geoparsing for Indonesia."""
