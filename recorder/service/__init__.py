"""The node's orchestration: admission, lifecycle writes, room sessions and their timers."""
