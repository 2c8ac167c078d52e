"""Plots and reports read from a run directory."""
