"""Delivery channels, one module each, behind one small interface (see base.py)."""
