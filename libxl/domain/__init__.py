"""The domain layer: what a guest is (the typed model) and how each file format reads and writes it.

Pure: no host, no libxl calls. Every format parses into ``model`` and the libvirt front end builds
libxl JSON from it; nothing here imports the front ends, the hosts or the agent."""
