"""The batch engine every derivative operation shares (restore, style): plan the batches, run them
in-process or on a work pool, make each item's version and record it. An operation is one entry in
``operations.OPERATIONS``; the shared code never branches on which one it runs."""
