"""The local web page behind serve.py: a Starlette app (app.py) and its page (static/).

Needs `pip install -r requirements-web.txt`; nothing else in jaxcolor imports it.
"""
