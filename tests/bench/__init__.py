"""Benchmarks: speed, scale and resources, run by ``make bench`` (see ``__main__``), never by pytest."""
