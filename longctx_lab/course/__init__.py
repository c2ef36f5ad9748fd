"""What the notebooks show and grade: the course layer, above all the compute code (nothing below imports it).

- :mod:`.quiz` and :mod:`.quizzes` (one module per chapter): the end-of-chapter quizzes.
- :mod:`.claims` and :mod:`.claim_sets` (one module per chapter): the two articles' claims, each checked
  against a computation.
- :mod:`.plots`: the chapters' shared figures (log-log axes, mask images, RoPE explorer, memory hierarchy).
- Chapter helpers, one module each: :mod:`.kv_experiments` and :mod:`.kv_plots` (chapter 5's request mixes
  and block tables), :mod:`.decode_walkthrough` (chapter 5's flash-decoding kernel read and run),
  :mod:`.stacks` and :mod:`.stack_plots` (chapter 7's production stacks), :mod:`.planner_widget`.
  A new chapter helper is a module here.
- :mod:`.course_map` (the map that opens every chapter) and :mod:`.diagrams` (explanatory pictures, one
  module per chapter).
- :mod:`.grading`: the checks the autograded exercises call, and the nbgrader preprocessors and audit
  behind them. A new grading check goes in :mod:`.grading`.
"""
