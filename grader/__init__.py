"""The grader, one module per job:

- :mod:`grader.editions`: the homework's student and solutions editions (``make homework``),
  rewritten from the source by :mod:`grader.rewrite`;
- :mod:`grader.homeworks`: the registry of homework and their graded parts;
- :mod:`grader.notebook`: finding, naming and reading submissions, bounded;
- :mod:`grader.flags`: what a notebook's code does, read from its syntax tree;
- :mod:`grader.scoring`: points for a part, by rubric, outside the sandbox;
- :mod:`grader.reports`: the feedback pages and the summaries;
- :mod:`grader.confine`: the bounds on a submission (cgroups, rlimits, uid, seccomp);
- :mod:`grader.sandbox`: running a submission isolated (bubblewrap, or a uid of its own);
- :mod:`grader.runtime`: a Python the sandbox's uid can run (without bubblewrap);
- :mod:`grader.frames`: what comes back from the sandbox, read as data only;
- :mod:`grader.runner`: inside the sandbox, the cells and the calls;
- :mod:`grader.gradescope`: the Gradescope autograder;
- :mod:`grader.grade`: the command line, grading a class (``make grade``).
"""
