"""Training jobs as Qt-free generators, shared by the GUI's Advanced tab and the tests.

``registry.JOBS`` maps a kind ("phase1", "phase2") to a ``TrainingJob`` whose ``build`` turns a
``JobSpec`` into a generator of ``Progress`` ending in a ``JobOutcome``; ``detector`` holds the
evaluate-then-install flow. The widgets in ``gwm_desktop.ui`` only run these in a worker.
"""
