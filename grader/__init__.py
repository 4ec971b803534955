"""The grader: the homework editions (:mod:`grader.homework`), the registry of graded
parts (:mod:`grader.parts`), the grader (:mod:`grader.grade`) and its sandbox
(:mod:`grader.sandbox`, :mod:`grader.runner`), and the Gradescope export
(:mod:`grader.gradescope`)."""
