"""The Sources pane: the sources of the loaded files, their lag, start/stop and test events."""
