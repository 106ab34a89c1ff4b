"""The ``archive`` command line: click only (parse, call one flow or service, render)."""
