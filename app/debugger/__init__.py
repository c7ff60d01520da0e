"""The debugger panes: breakpoints, paused executions, the context editor and resume actions."""
