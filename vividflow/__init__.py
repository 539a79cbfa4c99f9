"""VividFlow's application package: the settings every floor reads (`vividflow.settings`), the `vividflow`
command (`vividflow.cli`) and the studio's session logic. Import-free on purpose."""
