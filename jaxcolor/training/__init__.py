"""The training wing: the train step, the input pipeline and its datasets, config checks.

Imports the core (jaxcolor.*) only, never jaxcolor.apps.
"""
