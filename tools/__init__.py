"""The book's tools: the homework editions (:mod:`tools.homework`), the registry of graded
parts (:mod:`tools.parts`), the grader (:mod:`tools.grade`) and its sandbox
(:mod:`tools.sandbox`, :mod:`tools.runner`), and the Gradescope export
(:mod:`tools.gradescope`)."""
