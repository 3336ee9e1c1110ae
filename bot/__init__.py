"""The edges: channels, the web app, the CLI, settings. The only package that knows HTTP."""
