"""VividFlow's application layer on the top floor: what the studio page and the command line share, without Streamlit."""
