"""Generated, non-ranking tasks (reasoning puzzles, exact preference queries, medication
recommendation on real ICD trees).

They live in the harness, not in a plugin, because several plugins need the same
generator and the same rule-based grader (TRPA, the trl baselines, UDRRA and later LLM
methods), and plugins must not import each other. The thin ``plugins/align_tasks``
plugin registers them as datasets and scores models on them.
"""
