"""Stage IV — memory: leave a place, come back, and find the same place.

A frame-by-frame engine knows only its last W frames; the simulator's land *is* its state. Longer
context alone does not keep a dreamed world the same world: explicit rules for what to write, what to
retrieve, how to update and when to forget do (WorldMem, Context-as-Memory; state-space video world
models). This stage measures memory exactly, with the simulator as ground truth.

- :mod:`.walks`               walks that come back: out and back, with edits on the way out
- :mod:`.revisit_benchmark`   the revisit benchmark: two conditions, memory-needing tiles, edits
  found on return, controls, 95% intervals
- :mod:`.pose`                where am I? dead reckoning corrected by the shift read from frames
- :mod:`.frame_bank`          retrieval memory: a bank of past frames with pose and time, and its
  write / retrieve / update / forget policies
"""
