"""The command line: one argparse tree (``main``), one module per verb group (``commands``), the
one error path of every verb (``errors``) and the client side of remote URIs. It may start the
daemon (``run``); the daemon never imports it."""
