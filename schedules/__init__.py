"""The domain: reminder policies as data, pure stage evaluation, message templates.

This package imports nothing from `worker` or `notifiers`.
"""
