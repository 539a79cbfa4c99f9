"""The studio's widgets and session logic (the top floor): streamlit_app.py and pages/ wire them together.

`ui.studio` holds one session's conversation, plan, picture and jobs without Streamlit; the other modules
draw it. Light to import: no torch (the backends and the LLM load inside the functions that need them).
"""
