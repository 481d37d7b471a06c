"""The applications wing: batch colorizing, video, evaluation, export, the web page.

Imports the core (jaxcolor.*) only, never jaxcolor.training.
"""
