"""The daemon: the controller loop, its work queue and directory watcher, metrics and health over
HTTP, the unix socket and the systemd notify protocol. Started by ``xenreconcile run``."""
