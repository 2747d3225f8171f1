"""The venue's vocabulary in integers: symbols and their grids, orders, events, ids. No I/O."""
