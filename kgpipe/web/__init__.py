"""`kgpipe explore`: a local, read-only web app over a pipeline's last run (FastAPI, served by uvicorn).

data.py reads the artifacts as one snapshot per run, search.py finds entities, app.py serves the JSON API and
pages.py the HTML pages; corrections.py is the app's only write (a corrections file in the workspace).
"""
