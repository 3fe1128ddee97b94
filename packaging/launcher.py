"""The frozen app's entry script: the same ``main`` as the ``gwm-desktop`` console script."""

import multiprocessing
import sys

if __name__ == "__main__":
    # Frozen apps on Windows and macOS start worker processes by re-running this executable.
    multiprocessing.freeze_support()
    from gwm_desktop.ui.app import main

    sys.exit(main())
