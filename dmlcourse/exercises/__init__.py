"""Check functions for the exercises at the end of each notebook.

One module per lecture (``lecture01``, ``lecture05``, ...). Each ``check_*``
function runs the learner's implementation and ours on random inputs and
prints what is right, or raises ``AssertionError`` saying what is wrong
("your distance is not symmetric", "off by a square root", ...).
"""
