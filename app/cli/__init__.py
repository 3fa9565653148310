"""The `haul` command line: one module per noun, and the main job.

The only layer that composes all the others.
"""
