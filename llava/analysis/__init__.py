"""Analyses of any trained checkpoint: the task-interference score (what one task's updates do to another's loss)
with its heatmaps and the router load it measures."""
