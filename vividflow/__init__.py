"""VividFlow's application package: the settings every floor reads (`vividflow.settings`, `.sections`,
`.values`), the `vividflow` command (`vividflow.cli`) and one studio session's logic without Streamlit
(`vividflow.studio`). Import-free on purpose."""
