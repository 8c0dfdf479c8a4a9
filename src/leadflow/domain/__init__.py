"""The pure core of leadflow: no I/O, no clock, no environment, no framework imports."""
