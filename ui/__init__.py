"""The studio's Streamlit side (the top floor): widgets, and the per-process and per-session wiring in
`ui.services`; streamlit_app.py and pages/ put them on the page.

They draw `vividflow.studio.Studio` (one session's conversation, plan, picture and jobs, no Streamlit);
`ui.widgets` holds the pieces several pages share. Light to import: no torch (the backends and the LLM
load inside the functions that need them).
"""
