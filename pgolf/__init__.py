"""pgolf: a toolkit for parameter golf (byte-budgeted language models scored in bits per byte)."""

__version__ = "0.1.0"
