"""`recorderctl`: the command-line client of the control API."""
