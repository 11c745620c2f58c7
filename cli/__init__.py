"""The command-line front end (``realesrgan-studio``): argument parsing and terminal output over :mod:`core`.

It sits beside :mod:`api` and the dashboard; the library itself has no front end.
"""
