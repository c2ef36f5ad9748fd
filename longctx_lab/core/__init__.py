"""The bottom of the stack: what every other layer may use, and which imports nothing else of the package.

- :mod:`.validate`: argument checks that raise ``ValueError``/``TypeError`` naming the argument.
- :mod:`.display`: progress bars, widget panels and the course's plot style (the only display code that
  compute modules import).
- :mod:`.configs`: published model shapes (layers, heads, head dim, context) and GPU specifications.
- :mod:`.cost`: FLOPs and bytes of attention, the KV cache and a forward pass, from a config.
- :mod:`.environment`: installed versions against the declared ranges, devices, what will run where.
- :mod:`.recorded`: the recorded benchmark results the chapters read, shipped as package data.

A helper belongs here only if it knows nothing of attention, models or the course.
"""
