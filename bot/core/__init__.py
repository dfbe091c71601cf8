"""Leaf types shared by every layer: market events, orders, fills and market precision.

Nothing here imports from the rest of ``bot``; every other package may import from here.
"""
