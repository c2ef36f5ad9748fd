"""Explanatory diagrams the chapters draw: pictures of ideas (not plots of results), one module per chapter.

Each function draws with matplotlib on an ``ax`` it is given or creates, sized for the book's content width
(about 7.5 inches, text at least 8 pt), from numbers the chapter computes, so a diagram regenerates offline
and agrees with the cell beside it.
"""
