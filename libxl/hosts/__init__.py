"""The host layer: where libxl JSON meets a host. ``backend`` is the interface; ``binding`` the real
libxenlight, ``sim`` the simulated host, ``ssh`` the transport of ``xen+ssh://``, ``uri`` picks one.
Also what only a host knows: ballooning, I/O counters, save images, display ports."""
