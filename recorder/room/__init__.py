"""Room sessions: one per active room, behind a typed message boundary."""
