"""Shared web helpers, below every app: the client's address, rate limits, sign-in lockout and
lifetime, security headers, how the site behaves while Redis is away, Plotly figures out of the
process and the production storage of static files. Nothing here imports an app of this project."""
