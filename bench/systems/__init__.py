"""One module per measured system: the peers, the bare store loops and taskward itself."""
