"""The user's side of a check: a layer as they wrote it, adapted to the canonical Subject the pipeline calls.

Standard library and numpy only: this is the part of the project that runs next to the user's code.
"""
